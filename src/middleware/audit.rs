//! Audit records: one per call, logged by [`super::observe::ObserveLayer`] when it is asked to
//! (`--audit-log`). A record names the call, never its credentials: no header is logged but
//! `x-request-id`, and of the caller only the id of the key [`super::auth::AuthLayer`] accepted.

use std::hash::{BuildHasher as _, RandomState};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use http::HeaderMap;

use super::auth::Principal;

/// The request id header: honoured when a client (or a proxy in front) sends one, generated
/// otherwise, and sent back on the response.
pub const REQUEST_ID: &str = "x-request-id";

/// Longest incoming request id kept; a longer (or otherwise odd) one is replaced.
const MAX_REQUEST_ID: usize = 128;

/// What an audit record says of a call besides its outcome.
#[derive(Debug)]
pub(crate) struct Audit {
    pub(crate) request_id: String,
    path: String,
    peer: Option<SocketAddr>,
    key_id: OnceLock<Arc<str>>,
}

impl Audit {
    pub(crate) fn new(headers: &HeaderMap, path: &str, peer: Option<SocketAddr>, key_id: Option<Arc<str>>) -> Self {
        let request_id = headers
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .filter(|v| is_request_id(v))
            .map_or_else(generate_id, str::to_owned);
        let key = OnceLock::new();
        if let Some(k) = key_id {
            let _ = key.set(k);
        }
        Self { request_id, path: path.to_owned(), peer, key_id: key }
    }

    /// Records the key the authentication layer below accepted (if none was known yet).
    pub(crate) fn identify(&self, who: &Principal) {
        let _ = self.key_id.set(who.key_id.clone());
    }

    pub(crate) fn log(&self, protocol: &str, seconds: f64, code: &str) {
        tracing::info!(
            target: "portway::audit",
            request_id = %self.request_id,
            protocol,
            method = %self.path,
            peer = self.peer.map(tracing::field::display),
            key_id = self.key_id.get().map(|k| &**k),
            duration_ms = seconds * 1e3,
            code,
            "call"
        );
    }
}

/// A request id worth keeping: short, printable, no spaces or quotes (it goes into logs).
fn is_request_id(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= MAX_REQUEST_ID
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'/' | b'+' | b'='))
}

/// A new request id: a per-process random prefix (from the standard library's randomly seeded
/// hasher; no dependency for 64 bits) and a counter, unique within the process and unlikely
/// to repeat across processes.
fn generate_id() -> String {
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let prefix = *PREFIX.get_or_init(|| RandomState::new().hash_one(std::process::id()));
    format!("{prefix:016x}-{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The gRPC name of a status code, as the spec (`doc/statuscodes.md`) writes it.
pub(crate) fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_kept_only_when_harmless() {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID, "abc-123".parse().unwrap());
        assert_eq!(Audit::new(&headers, "/a.B/C", None, None).request_id, "abc-123");
        for odd in ["has space", "quote\"", &"x".repeat(MAX_REQUEST_ID + 1)] {
            headers.insert(REQUEST_ID, odd.parse().unwrap());
            let id = Audit::new(&headers, "/a.B/C", None, None).request_id;
            assert_ne!(id, odd);
            assert!(is_request_id(&id), "{id}");
        }
        let a = Audit::new(&HeaderMap::new(), "/a.B/C", None, None).request_id;
        let b = Audit::new(&HeaderMap::new(), "/a.B/C", None, None).request_id;
        assert_ne!(a, b, "generated ids repeat");
    }
}
