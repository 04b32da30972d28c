//! The state of one observed call, shared by its response future and its two bodies, and
//! recorded (metrics, audit record) when the last of them drops it.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU64, Ordering};
use std::time::Instant;

use http::HeaderMap;

use super::audit::{self, Audit};
use super::auth::Principal;
use crate::metrics::calls::{CallLabels, CallSample, CallTable};

/// No status seen (yet): a call that ends so was cancelled.
const UNSET: i32 = -1;

/// One call, shared by its future and bodies; recorded when the last of them drops it.
#[derive(Debug)]
pub(crate) struct CallState {
    table: Arc<CallTable>,
    protocol: &'static str,
    method: Arc<str>,
    in_flight: Arc<AtomicI64>,
    start: Instant,
    /// When the response ended, in nanoseconds after `start` plus one (0: not yet).
    ended_nanos: AtomicU64,
    code: AtomicI32,
    pub(crate) messages_in: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) messages_out: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    audit: Option<Box<Audit>>,
}

impl CallState {
    /// A call starting now (counted in flight until it is recorded).
    pub(crate) fn start(
        table: &Arc<CallTable>,
        protocol: &'static str,
        method: Arc<str>,
        audit: Option<Box<Audit>>,
    ) -> Arc<Self> {
        let in_flight = table.in_flight(protocol);
        in_flight.fetch_add(1, Ordering::Relaxed);
        Arc::new(Self {
            table: table.clone(),
            protocol,
            method,
            in_flight,
            start: Instant::now(),
            ended_nanos: AtomicU64::new(0),
            code: AtomicI32::new(UNSET),
            messages_in: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            messages_out: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            audit,
        })
    }

    /// The call failed below with `code` (an error rather than a response).
    pub(crate) fn failed(&self, code: tonic::Code) {
        self.code.store(code as i32, Ordering::Relaxed);
        self.end();
    }

    /// Who called, as a layer below found out (for the audit record).
    pub(crate) fn identify(&self, who: &Principal) {
        if let Some(audit) = &self.audit {
            audit.identify(who);
        }
    }

    /// Takes the status from `grpc-status`, if `headers` (or trailers) carry one.
    pub(crate) fn status_from(&self, headers: &HeaderMap) {
        if let Some(code) =
            headers.get(crate::transcode::call::GRPC_STATUS).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok())
        {
            self.code.store(tonic::Code::from_i32(code) as i32, Ordering::Relaxed);
        }
    }

    /// Marks the end of the response (the first time only).
    pub(crate) fn end(&self) {
        let nanos = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX - 1) + 1;
        let _ = self.ended_nanos.compare_exchange(0, nanos, Ordering::Relaxed, Ordering::Relaxed);
    }
}

impl Drop for CallState {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        let seconds = match self.ended_nanos.load(Ordering::Relaxed) {
            0 => self.start.elapsed().as_secs_f64(),
            n => (n - 1) as f64 / 1e9,
        };
        let code = match self.code.load(Ordering::Relaxed) {
            UNSET => tonic::Code::Cancelled,
            c => tonic::Code::from_i32(c),
        };
        let sample = CallSample {
            seconds,
            messages_in: self.messages_in.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            messages_out: self.messages_out.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
        };
        let code = audit::code_name(code);
        if let Some(audit) = &self.audit {
            audit.log(self.protocol, seconds, code);
        }
        self.table.record(CallLabels { protocol: self.protocol, method: self.method.clone(), code }, &sample);
    }
}
