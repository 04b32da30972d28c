//! Gateway metrics, exposed at `/metrics` in the OpenMetrics text format (which Prometheus
//! scrapes), encoded by `prometheus-client`.
//!
//! Two kinds live here:
//! - the listener's and the WebSocket adapter's gauges and counters: plain atomics (the hot
//!   paths update them with one instruction), read at each scrape by a collector;
//! - a [`Registry`] that other parts register their own metrics or collectors with: the
//!   call metrics of [`crate::ObserveLayer`], the state store's collector (registered by the
//!   binary, so the gateway knows nothing of that service), or an embedder's own.
//!
//! They only observe: admission (connections, sockets, calls) is decided by semaphores
//! elsewhere, so changing what is measured cannot change who is let in.

use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use std::sync::atomic::{AtomicU64, Ordering};

pub mod calls;
pub mod connections;

const PROTOCOLS: [&str; 6] = ["grpc", "grpc_web", "websocket", "connect", "unsupported", "web"];

/// The `protocol` label of `portway_requests_total` (the order of `PROTOCOLS`).
#[derive(Debug, Clone, Copy)]
pub(crate) enum ProtocolLabel {
    Grpc,
    GrpcWeb,
    WebSocket,
    Connect,
    Unsupported,
    Web,
}

impl ProtocolLabel {
    /// The label's value.
    pub(crate) fn name(self) -> &'static str {
        PROTOCOLS[self as usize]
    }
}

/// Process-wide counters. Cheap to update from any task.
#[derive(Debug, Default)]
pub struct Metrics {
    /// What others registered (see [`Metrics::register`]).
    registry: Mutex<Registry>,
    connections_open: AtomicU64,
    connections_total: AtomicU64,
    connections_refused: AtomicU64,
    requests: [AtomicU64; PROTOCOLS.len()],
    /// Open WebSocket sockets.
    pub websockets_open: AtomicU64,
    /// Calls in flight on WebSocket sockets.
    pub websocket_calls_open: AtomicU64,
    /// Live tasks of WebSocket sessions (a reader and a writer per socket, one per call):
    /// returns to zero when every socket is closed, or something leaks.
    pub websocket_tasks: AtomicU64,
    /// The listener's refusals, reclaims and timeouts.
    pub connection_events: connections::ConnectionCounters,
}

impl Metrics {
    /// Counts one request routed to `protocol`.
    pub(crate) fn request(&self, protocol: ProtocolLabel) {
        self.requests[protocol as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an accepted connection; the guard counts its close.
    pub(crate) fn connection(self: &std::sync::Arc<Self>) -> ConnectionGuard {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        self.connections_total.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(self.clone())
    }

    /// Counts a connection closed at once because the limit was reached.
    pub(crate) fn connection_refused(&self) {
        self.connections_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Open connections now.
    pub fn connections_open(&self) -> u64 {
        self.connections_open.load(Ordering::Relaxed)
    }

    /// Registers more metrics, rendered with these at `/metrics`: `f` gets the registry
    /// (e.g. to call [`Registry::register`] or [`Registry::register_collector`]).
    pub fn register<T>(&self, f: impl FnOnce(&mut Registry) -> T) -> T {
        f(&mut self.registry.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The OpenMetrics text exposition (what `/metrics` serves, with
    /// [`CONTENT_TYPE`] as its content type).
    pub fn render(self: &Arc<Self>) -> String {
        // The built-in counters are atomics of this struct, so they are read by a collector
        // holding it, in a registry of their own for this scrape.
        let mut builtin = Registry::default();
        builtin.register_collector(Box::new(Builtin(self.clone())));
        let mut out = String::new();
        // Writing to a `String` cannot fail; an encoder error means a broken metric, and
        // what was written before it is still served.
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, &builtin);
        let _ = self.register(|registry| prometheus_client::encoding::text::encode_registry(&mut out, registry));
        let _ = prometheus_client::encoding::text::encode_eof(&mut out);
        out
    }
}

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Encodes a counter `name` (`_total` is appended) of value `v`.
pub(crate) fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(v);
    c.encode(enc.encode_descriptor(name, help, None, c.metric_type())?)
}

/// Encodes a gauge `name` of value `v`.
pub(crate) fn gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, v: i64) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(v);
    g.encode(enc.encode_descriptor(name, help, None, g.metric_type())?)
}

/// Encodes a counter `name` with one label `key`, a series per `(value, count)`.
pub(crate) fn labelled_counter<'a>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    key: &str,
    series: impl IntoIterator<Item = (&'a str, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut family = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (value, v) in series {
        ConstCounter::new(v).encode(family.encode_family(&[(key, value)])?)?;
    }
    Ok(())
}

fn load(v: &AtomicU64) -> i64 {
    i64::try_from(v.load(Ordering::Relaxed)).unwrap_or(i64::MAX)
}

/// Reads the atomics of [`Metrics`] at a scrape.
#[derive(Debug)]
struct Builtin(Arc<Metrics>);

impl Collector for Builtin {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let m = &*self.0;
        gauge(&mut enc, "portway_connections_open", "Open client connections.", load(&m.connections_open))?;
        counter(
            &mut enc,
            "portway_connections",
            "Accepted client connections.",
            m.connections_total.load(Ordering::Relaxed),
        )?;
        counter(
            &mut enc,
            "portway_connections_refused",
            "Connections closed at once because max_connections was reached.",
            m.connections_refused.load(Ordering::Relaxed),
        )?;
        m.connection_events.encode(&mut enc)?;
        labelled_counter(
            &mut enc,
            "portway_requests",
            "HTTP requests by protocol.",
            "protocol",
            PROTOCOLS.iter().zip(&m.requests).map(|(name, v)| (*name, v.load(Ordering::Relaxed))),
        )?;
        gauge(&mut enc, "portway_websockets_open", "Open WebSocket sockets.", load(&m.websockets_open))?;
        gauge(
            &mut enc,
            "portway_websocket_calls_open",
            "Calls in flight on WebSocket sockets.",
            load(&m.websocket_calls_open),
        )?;
        gauge(&mut enc, "portway_websocket_tasks", "Live tasks of WebSocket sessions.", load(&m.websocket_tasks))
    }
}

/// Decrements the open-connection gauge when dropped.
#[derive(Debug)]
pub(crate) struct ConnectionGuard(std::sync::Arc<Metrics>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// `GET /metrics`, rendering `metrics`: what the gateway's port and [`serve`] answer.
pub(crate) fn router(metrics: Arc<Metrics>) -> axum::Router {
    use axum::routing::get;
    axum::Router::new().route(
        "/metrics",
        get(move || {
            let metrics = metrics.clone();
            async move { ([(http::header::CONTENT_TYPE, CONTENT_TYPE)], metrics.render()) }
        }),
    )
}

/// Serves `metrics` at `/metrics` on `listener` (plain HTTP/1.1 and HTTP/2, nothing else),
/// until the process ends: a port of its own for the scraper. Open to anyone who reaches
/// `listener`; `Gateway::serve_metrics` puts it under the gateway's API keys.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) {
    serve_router(listener, router(metrics)).await;
}

/// Serves `app` on `listener` until the process ends. No route of `app` reads a request body,
/// so an HTTP/1.1 request that has one gets `connection: close` on its response (the
/// early-answer rule: the client learns that the rest of its body will not be read).
pub(crate) async fn serve_router(listener: tokio::net::TcpListener, app: axum::Router) {
    let app = app.layer(axum::middleware::from_fn(close_unread));
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "the metrics listener failed");
    }
}

async fn close_unread(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    use http_body::Body as _;
    let close = req.version() <= http::Version::HTTP_11 && !req.body().is_end_stream();
    let mut resp = next.run(req).await;
    if close {
        resp.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
    }
    resp
}
