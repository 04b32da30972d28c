//! Connection counters: why connections were refused, reclaimed or closed. They observe the
//! listener; admission itself is the semaphore in `server::admission`.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::DescriptorEncoder;

use super::{counter, gauge, labelled_counter};

/// Which limit closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timeout {
    /// Nothing (or half an HTTP/2 preface) within `first_byte_timeout`.
    FirstByte = 0,
    /// A request head or an HTTP/2 header block not complete within `header_read_timeout`.
    Header = 1,
    /// A request body without progress for `body_timeout`.
    Body = 2,
    /// A client that took no response bytes for `write_timeout`.
    Write = 3,
    /// No open request for `idle_timeout`.
    Idle = 4,
    /// A TLS handshake not complete within `tls_handshake_timeout`.
    TlsHandshake = 5,
}

const TIMEOUTS: [&str; 6] = ["first_byte", "header", "body", "write", "idle", "tls_handshake"];

/// Counters of the listener's decisions, rendered at `/metrics`.
#[derive(Debug, Default)]
pub struct ConnectionCounters {
    pub(crate) refused_per_address: AtomicU64,
    pub(crate) reclaimed: AtomicU64,
    timeouts: [AtomicU64; TIMEOUTS.len()],
    tls_handshake_failures: AtomicU64,
}

impl ConnectionCounters {
    pub(crate) fn timed_out(&self, which: Timeout) {
        self.timeouts[which as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn tls_handshake_failed(&self) {
        self.tls_handshake_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// TLS handshakes that failed so far (a protocol error, no common cipher, a client
    /// certificate refused), timeouts not included.
    pub fn tls_handshake_failures(&self) -> u64 {
        self.tls_handshake_failures.load(Ordering::Relaxed)
    }

    /// Connections closed so far to make room for a new one (the reserve at work).
    pub fn reclaimed(&self) -> u64 {
        self.reclaimed.load(Ordering::Relaxed)
    }

    /// Connections closed by the timeout `which` (one of `first_byte`, `header`, `body`,
    /// `write`, `idle`, `tls_handshake`) so far.
    pub fn timeouts(&self, which: &str) -> u64 {
        TIMEOUTS.iter().position(|t| *t == which).map_or(0, |i| self.timeouts[i].load(Ordering::Relaxed))
    }

    /// Encodes these counters (and the runtime's live task count, which is what a leak
    /// shows first).
    pub(crate) fn encode(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        counter(
            enc,
            "portway_connections_refused_per_address",
            "Connections closed at once because their address had max_connections_per_address open.",
            self.refused_per_address.load(Ordering::Relaxed),
        )?;
        counter(
            enc,
            "portway_connections_reclaimed",
            "Connections closed to make room for a new one while the connection table was full.",
            self.reclaimed.load(Ordering::Relaxed),
        )?;
        counter(
            enc,
            "portway_tls_handshake_failures",
            "TLS handshakes that failed (timeouts are counted in portway_connection_timeouts_total).",
            self.tls_handshake_failures.load(Ordering::Relaxed),
        )?;
        labelled_counter(
            enc,
            "portway_connection_timeouts",
            "Connections closed by a timeout, by phase.",
            "phase",
            TIMEOUTS.iter().zip(&self.timeouts).map(|(name, v)| (*name, v.load(Ordering::Relaxed))),
        )?;
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let tasks = runtime.metrics().num_alive_tasks();
            gauge(
                enc,
                "portway_runtime_tasks",
                "Live tasks on the runtime.",
                i64::try_from(tasks).unwrap_or(i64::MAX),
            )?;
        }
        Ok(())
    }
}
