//! One connection, from accept to close: TLS or cleartext by the first byte, the TLS
//! handshake under `tls_handshake_timeout`, protocol detection under `first_byte_timeout`,
//! hyper's HTTP/1.1 or HTTP/2 server with the gateway's limits, and a watchdog for what hyper
//! does not bound itself (idle connections, clients that take no response bytes, eviction and
//! shutdown, each ending with a graceful close: HTTP/2 GOAWAY, HTTP/1.1 after the current
//! response).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tonic::transport::server::{Connected as _, TcpConnectInfo};

use super::admission::{ConnState, Slot, now_ms};
use super::io::{IoLimits, Rewind, Watched};
use super::service::{BodyLimits, ConnService, PeerInfo};
use super::tls::{ClientIdentity, Tls};
use crate::config::HttpConfig;
use crate::gateway::GatewayService;
use crate::metrics::Metrics;
use crate::metrics::connections::Timeout;

/// How long a connection being closed to free its slot (or for a timeout) gets to write its
/// GOAWAY and finish what is in flight before it is dropped.
pub(crate) const EVICTION_GRACE: Duration = Duration::from_millis(250);

const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What every connection shares: hyper's builders, the limits and TLS.
pub(crate) struct Context {
    tls: Option<Tls>,
    h1: http1::Builder,
    h2: http2::Builder<TokioExecutor>,
    io: IoLimits,
    body: BodyLimits,
    first_byte_timeout: Duration,
    tls_handshake_timeout: Duration,
    idle_timeout: Duration,
    write_timeout: Duration,
    shutdown_grace: Duration,
    /// Connections dropped at the end of the shutdown grace with a call still open.
    cut_at_shutdown: AtomicUsize,
}

impl Context {
    pub(crate) fn new(http: &HttpConfig, tls: Option<Tls>) -> Self {
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
            tls,
            h1,
            h2,
            io: IoLimits {
                write_timeout: http.write_timeout,
                header_read_timeout: http.header_read_timeout,
                close_linger: http.close_linger,
            },
            body: BodyLimits { body_timeout: http.body_timeout, max_drain_bytes: http.http1_max_drain_bytes },
            first_byte_timeout: http.first_byte_timeout,
            tls_handshake_timeout: http.tls_handshake_timeout,
            idle_timeout: http.idle_timeout,
            write_timeout: http.write_timeout,
            shutdown_grace: http.shutdown_grace,
            cut_at_shutdown: AtomicUsize::new(0),
        }
    }

    /// How many connections the shutdown grace period ended (their calls cut off). Each
    /// connection's own timer may end it in the same instant as the server's, so the server
    /// asks this as well as its own timer.
    pub(crate) fn cut_at_shutdown(&self) -> usize {
        self.cut_at_shutdown.load(Ordering::Relaxed)
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
    let tcp = TcpConnectInfo { local_addr: stream.local_addr().ok(), remote_addr: Some(peer) };
    let state = slot.state().clone();
    let metrics = slot.metrics().clone();
    let Some(tls) = &cx.tls else {
        let io = Watched::new(stream, slot, cx.io);
        return serve_io(io, PeerInfo::Tcp(tcp), &state, &metrics, service, &cx, shutdown).await;
    };
    // The first byte tells a TLS handshake (a handshake record: 0x16) from cleartext HTTP; it
    // is peeked, not read, so that either side gets the whole stream.
    let first = match bounded(&mut shutdown, &state, cx.first_byte_timeout, peek(&stream)).await {
        Bounded::Done(Ok(first)) => first,
        Bounded::Done(Err(_)) | Bounded::Stopped => return,
        Bounded::TimedOut => return metrics.connection_events.timed_out(Timeout::FirstByte),
    };
    if first != TLS_HANDSHAKE {
        let io = Watched::new(stream, slot, cx.io);
        if tls.allows_cleartext() {
            return serve_io(io, PeerInfo::Tcp(tcp), &state, &metrics, service, &cx, shutdown).await;
        }
        return refuse_cleartext(io, first).await;
    }
    let stream = match bounded(&mut shutdown, &state, cx.tls_handshake_timeout, tls.acceptor().accept(stream)).await {
        Bounded::Done(Ok(stream)) => stream,
        Bounded::Done(Err(e)) => {
            metrics.connection_events.tls_handshake_failed();
            return tracing::debug!(%peer, error = %e, "TLS handshake failed");
        }
        Bounded::TimedOut => return metrics.connection_events.timed_out(Timeout::TlsHandshake),
        Bounded::Stopped => return,
    };
    // Verified by rustls: the first certificate is the client's own.
    let identity =
        stream.get_ref().1.peer_certificates().and_then(<[_]>::first).and_then(ClientIdentity::from_certificate);
    let info = PeerInfo::Tls(stream.connect_info(), identity);
    serve_io(Watched::new(stream, slot, cx.io), info, &state, &metrics, service, &cx, shutdown).await;
}

/// Serves HTTP on a connection (after its TLS handshake, if any): tells HTTP/1.1 from
/// HTTP/2 by the first bytes, under `first_byte_timeout`, then runs hyper until it closes.
async fn serve_io<T>(
    mut io: Watched<T>,
    info: PeerInfo,
    state: &Arc<ConnState>,
    metrics: &Arc<Metrics>,
    service: GatewayService,
    cx: &Context,
    mut shutdown: watch::Receiver<bool>,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (http2, prefix, len) = match bounded(&mut shutdown, state, cx.first_byte_timeout, sniff(&mut io)).await {
        Bounded::Done(Ok(found)) => found,
        Bounded::Done(Err(_)) | Bounded::Stopped => return,
        Bounded::TimedOut => return metrics.connection_events.timed_out(Timeout::FirstByte),
    };
    if http2 {
        io.scan_http2();
    }
    let io = TokioIo::new(Rewind::new(&prefix[..len], io));
    let service = TowerToHyperService::new(ConnService::new(service, state.clone(), metrics.clone(), info, cx.body));
    if http2 {
        drive(cx.h2.serve_connection(io, service), state, metrics, cx, shutdown).await;
    } else {
        drive(cx.h1.serve_connection(io, service).with_upgrades(), state, metrics, cx, shutdown).await;
    }
}

/// How a bounded phase of a connection ended.
enum Bounded<T> {
    Done(T),
    TimedOut,
    /// Shutdown began, or the connection is being evicted.
    Stopped,
}

/// Runs `phase` for at most `limit`, unless the server shuts down or the connection is
/// evicted first.
async fn bounded<F: Future>(
    shutdown: &mut watch::Receiver<bool>,
    state: &ConnState,
    limit: Duration,
    phase: F,
) -> Bounded<F::Output> {
    tokio::select! {
        biased;
        _ = shutdown.changed() => Bounded::Stopped,
        () = evicted(state) => Bounded::Stopped,
        done = tokio::time::timeout(limit, phase) => done.map_or(Bounded::TimedOut, Bounded::Done),
    }
}

/// The first byte of a TLS connection: a handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

/// The first byte the client sent, left in the socket.
async fn peek(stream: &TcpStream) -> io::Result<u8> {
    let mut first = [0u8; 1];
    match stream.peek(&mut first).await? {
        0 => Err(io::ErrorKind::UnexpectedEof.into()),
        _ => Ok(first[0]),
    }
}

/// The answer to a cleartext HTTP/1.1 request on a port that speaks only TLS.
const CLEARTEXT_REFUSED: &[u8] = b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\n\
    content-length: 81\r\nconnection: close\r\n\r\n\
    This port speaks TLS only: use https:// (a plain-HTTP request cannot be served).\n";

/// Cleartext on a TLS-only port: what looks like an HTTP/1.1 request (it begins with a
/// method's capital letter) is told to use `https://`, so a person who typed `http://` in a
/// browser reads why; anything else is closed. The lingering close lets the client read the
/// answer before the connection ends.
async fn refuse_cleartext<T: AsyncRead + AsyncWrite + Unpin>(mut io: Watched<T>, first: u8) {
    if first.is_ascii_uppercase() {
        let _ = io.write_all(CLEARTEXT_REFUSED).await;
    }
    let _ = io.shutdown().await;
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
    let at_shutdown = *shutdown.borrow();
    conn.close_gracefully();
    match tokio::time::timeout(grace, &mut conn).await {
        Ok(ended) => log_end(ended, metrics),
        Err(_) if at_shutdown => {
            cx.cut_at_shutdown.fetch_add(1, Ordering::Relaxed);
        }
        Err(_) => {}
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
