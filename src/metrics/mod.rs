//! Gateway counters, exposed at `/metrics` in the Prometheus text format.
//!
//! A handful of atomics rendered by hand: the gateway needs a few process-wide gauges
//! and counters, not a metrics framework (a full metrics layer is its own piece of work).
//! They only observe: admission (connections, sockets, calls) is decided by semaphores
//! elsewhere, so changing what is measured cannot change who is let in.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

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

/// Process-wide counters. Cheap to update from any task.
#[derive(Debug, Default)]
pub struct Metrics {
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

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let gauge = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        gauge(&mut out, "portway_connections_open", "Open client connections.", self.connections_open());
        counter(
            &mut out,
            "portway_connections_total",
            "Accepted client connections.",
            self.connections_total.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "portway_connections_refused_total",
            "Connections closed at once because max_connections was reached.",
            self.connections_refused.load(Ordering::Relaxed),
        );
        self.connection_events.render(&mut out);
        let _ = writeln!(
            out,
            "# HELP portway_requests_total HTTP requests by protocol.\n# TYPE portway_requests_total counter"
        );
        for (name, v) in PROTOCOLS.iter().zip(&self.requests) {
            let _ = writeln!(out, "portway_requests_total{{protocol=\"{name}\"}} {}", v.load(Ordering::Relaxed));
        }
        gauge(
            &mut out,
            "portway_websockets_open",
            "Open WebSocket sockets.",
            self.websockets_open.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "portway_websocket_calls_open",
            "Calls in flight on WebSocket sockets.",
            self.websocket_calls_open.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "portway_websocket_tasks",
            "Live tasks of WebSocket sessions.",
            self.websocket_tasks.load(Ordering::Relaxed),
        );
        out
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
