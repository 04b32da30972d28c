//! The boundary between a connection and the gateway: every request passes through
//! [`ConnService`], which
//!
//! - counts the request as open until its response body ends (the idle timeout, and the
//!   reserve's notion of progress, depend on it);
//! - bounds the request body's progress ([`RequestBody`], `body_timeout`);
//! - notices responses the client is not taking ([`ResponseBody`], `write_timeout`);
//! - keeps HTTP/1.1 connections usable after an *early answer* — a response sent before the
//!   request body was read (an unknown method, a message over the limit, an unsupported
//!   content type: any adapter, any reason). hyper, when a handler drops an unfinished body,
//!   reads what is already buffered and otherwise closes the connection without saying so; a
//!   client still writing then gets a reset instead of the status, and its next request on the
//!   connection fails. Here the rest of a body is read and discarded in the background, up to
//!   `http1_max_drain_bytes`; a body known to be longer, or of unknown length, gets
//!   `connection: close` on the response, and the socket's lingering close
//!   ([`super::io::Watched`]) lets the client read that response before the connection ends.
//!   HTTP/2 needs none of this: hyper resets the unread stream with `NO_ERROR` after the
//!   response, as RFC 9113 §8.1 asks.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, Version, header};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tower::Service;

use super::admission::{ConnState, H1Body};
use super::tls::ClientIdentity;
use crate::metrics::Metrics;
use crate::metrics::connections::Timeout;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Limits applied to requests and their bodies.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimits {
    pub body_timeout: Duration,
    pub max_drain_bytes: usize,
}

/// What every request on a connection carries about its peer, as tonic's own server puts
/// it: `Request::remote_addr()` reads either, `Request::peer_certs()` the TLS one.
#[derive(Clone)]
pub(crate) enum PeerInfo {
    Tcp(TcpConnectInfo),
    Tls(TlsConnectInfo<TcpConnectInfo>, Option<ClientIdentity>),
}

impl PeerInfo {
    fn insert_into(&self, extensions: &mut http::Extensions) {
        match self {
            PeerInfo::Tcp(info) => {
                extensions.insert(info.clone());
            }
            PeerInfo::Tls(info, identity) => {
                // The TCP part on its own too, for layers that read the client's address from
                // it whatever the transport (the per-address rate limit).
                extensions.insert(info.get_ref().clone());
                extensions.insert(info.clone());
                if let Some(identity) = identity {
                    extensions.insert(identity.clone());
                }
            }
        }
    }
}

/// Wraps the gateway for one connection.
#[derive(Clone)]
pub(crate) struct ConnService<S> {
    inner: S,
    conn: Arc<ConnState>,
    metrics: Arc<Metrics>,
    info: PeerInfo,
    limits: BodyLimits,
}

impl<S> ConnService<S> {
    pub(crate) fn new(
        inner: S,
        conn: Arc<ConnState>,
        metrics: Arc<Metrics>,
        info: PeerInfo,
        limits: BodyLimits,
    ) -> Self {
        Self { inner, conn, metrics, info, limits }
    }
}

impl<S, B> Service<Request<Incoming>> for ConnService<S>
where
    S: Service<Request<RequestBody>, Response = Response<B>, Error = Infallible>,
    B: Body<Data = Bytes>,
{
    type Response = Response<ResponseBody<B>>;
    type Error = Infallible;
    type Future = ConnFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Incoming>) -> Self::Future {
        let guard = RequestGuard::new(self.conn.clone());
        // What `tonic::Request::remote_addr()` (and `peer_certs()`) reads.
        self.info.insert_into(req.extensions_mut());
        let h1 = req.version() <= Version::HTTP_11;
        let connect = req.method() == Method::CONNECT;
        let expects_continue =
            h1 && req.headers().get(header::EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        let drain = (h1 && !expects_continue).then_some(self.limits.max_drain_bytes);
        let timeout = (h1 || !is_stream(&req)).then_some(self.limits.body_timeout);
        if h1 {
            self.conn.set_h1_body(H1Body::Reading);
        }
        let req = req.map(|body| RequestBody {
            inner: Some(body),
            conn: self.conn.clone(),
            metrics: self.metrics.clone(),
            timeout,
            timer: None,
            progressed: false,
            h1: h1.then_some(H1Drain { max_bytes: drain }),
        });
        ConnFuture { inner: self.inner.call(req), guard: Some(guard), h1, connect, expects_continue }
    }
}

pin_project! {
    /// The response future of [`ConnService`].
    pub(crate) struct ConnFuture<F> {
        #[pin]
        inner: F,
        guard: Option<RequestGuard>,
        h1: bool,
        connect: bool,
        expects_continue: bool,
    }
}

impl<F, B> Future for ConnFuture<F>
where
    F: Future<Output = Result<Response<B>, Infallible>>,
{
    type Output = Result<Response<ResponseBody<B>>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(mut resp) = ready!(this.inner.poll(cx));
        // A future is never polled after it completed (hyper never does).
        let guard = this.guard.take().expect("ConnFuture polled after completion");
        let conn = &guard.conn;
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            conn.mark_upgraded();
        } else if *this.connect && resp.status().is_success() {
            conn.mark_tunnel();
        }
        if *this.h1 {
            // The early-answer rule: a body dropped unread that cannot be drained makes this
            // the connection's last response, and the client is told so.
            let must_close = match conn.h1_body() {
                H1Body::MustClose => true,
                H1Body::Reading => *this.expects_continue,
                H1Body::Draining | H1Body::Done => false,
            };
            if must_close {
                resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
        }
        Poll::Ready(Ok(resp.map(|inner| ResponseBody { inner, guard: Some(guard), waiting: false })))
    }
}

/// Counts a request as open from its arrival until its response body is dropped.
struct RequestGuard {
    conn: Arc<ConnState>,
}

impl RequestGuard {
    fn new(conn: Arc<ConnState>) -> Self {
        conn.request_started();
        Self { conn }
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.conn.request_ended();
    }
}

/// HTTP/1.1 only: what to do with the body if the handler drops it unfinished.
#[derive(Debug, Clone, Copy)]
struct H1Drain {
    /// Drain up to this many bytes; `None`: never (the client waits for `100 Continue`).
    max_bytes: Option<usize>,
}

/// Whether a request may be a long-lived client stream, whose silence is legitimate: native
/// gRPC and Connect streaming. Over HTTP/2 these are bounded by their deadline, keepalive and
/// the reserve, not by `body_timeout` (a quiet stream costs a stream, not a connection).
fn is_stream(req: &Request<Incoming>) -> bool {
    let Some(ct) = req.headers().get(header::CONTENT_TYPE).map(HeaderValue::as_bytes) else { return false };
    let starts = |prefix: &[u8]| ct.len() >= prefix.len() && ct[..prefix.len()].eq_ignore_ascii_case(prefix);
    (starts(b"application/grpc") && !starts(b"application/grpc-web")) || starts(b"application/connect+")
}

/// The request body every adapter reads: hyper's body, bounded by `body_timeout` (the time
/// without a byte; HTTP/1.1 bodies, and HTTP/2 bodies that are not client streams), with the
/// early-answer rule on drop.
pub struct RequestBody {
    inner: Option<Incoming>,
    conn: Arc<ConnState>,
    metrics: Arc<Metrics>,
    timeout: Option<Duration>,
    /// Armed only when the body has to wait: a body already buffered never needs a timer.
    timer: Option<Pin<Box<Sleep>>>,
    /// Data arrived since the timer was armed.
    progressed: bool,
    h1: Option<H1Drain>,
}

impl std::fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestBody").field("inner", &self.inner).finish_non_exhaustive()
    }
}

impl RequestBody {
    fn finished(&mut self) {
        if self.h1.take().is_some() {
            self.conn.set_h1_body(H1Body::Done);
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else { return Poll::Ready(None) };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.progressed = true;
                this.conn.progress();
                if this.inner.as_ref().is_some_and(Body::is_end_stream) {
                    this.finished();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.finished();
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                this.finished();
                Poll::Ready(None)
            }
            Poll::Pending => {
                let Some(timeout) = this.timeout else { return Poll::Pending };
                let deadline = Instant::now() + timeout;
                let timer = this.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if std::mem::take(&mut this.progressed) {
                    timer.as_mut().reset(deadline);
                }
                if timer.as_mut().poll(cx).is_ready() {
                    this.metrics.connection_events.timed_out(Timeout::Body);
                    // Dropping hyper's body now: HTTP/1.1 then closes the connection after
                    // the response, HTTP/2 resets the stream.
                    this.inner = None;
                    this.h1 = None;
                    this.conn.set_h1_body(H1Body::MustClose);
                    return Poll::Ready(Some(Err("the request body made no progress for too long".into())));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.as_ref().map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        let (Some(h1), Some(inner)) = (self.h1.take(), self.inner.take()) else { return };
        if inner.is_end_stream() {
            self.conn.set_h1_body(H1Body::Done);
            return;
        }
        let remaining = inner.size_hint().exact();
        let fits = matches!((h1.max_bytes, remaining), (Some(max), Some(left)) if left <= max as u64);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) if fits => {
                self.conn.set_h1_body(H1Body::Draining);
                runtime.spawn(drain(inner, self.timeout.unwrap_or(DRAIN_TIME)));
            }
            _ => self.conn.set_h1_body(H1Body::MustClose),
        }
    }
}

/// The drain's time bound when the body has no timeout (HTTP/1.1 bodies always have one).
const DRAIN_TIME: Duration = Duration::from_secs(30);

/// Reads and discards the rest of an HTTP/1.1 request body (already known to be within the
/// drain limit), for at most `timeout`: once it ends, hyper reads the next request.
async fn drain(mut body: Incoming, timeout: Duration) {
    let _ = tokio::time::timeout(timeout, async { while let Some(Ok(_)) = body.frame().await {} }).await;
}

pin_project! {
    /// A response body that tells the connection when a chunk waits for the client: hyper
    /// asks for the next chunk only once the previous one was taken (by the socket, or, on
    /// HTTP/2, by the client's flow-control window). Everything else is delegated, so that
    /// hyper decides END_STREAM exactly as it would without the wrapper.
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        guard: Option<RequestGuard>,
        waiting: bool,
    }

    impl<B> PinnedDrop for ResponseBody<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if *this.waiting && let Some(guard) = this.guard.as_ref() {
                guard.conn.response_taken();
            }
        }
    }
}

impl<B: Body<Data = Bytes>> Body for ResponseBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let Some(guard) = this.guard.as_ref() else { return this.inner.poll_frame(cx) };
        if std::mem::take(this.waiting) {
            guard.conn.response_taken();
            guard.conn.progress();
        }
        let polled = this.inner.poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && frame.data_ref().is_some_and(|d| !d.is_empty())
        {
            *this.waiting = true;
            guard.conn.response_waiting();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
