//! One upstream: a name, one or more endpoints (balanced round-robin), and the forwarding of
//! native gRPC calls to it, untouched but for what belongs to a hop.
//!
//! An endpoint whose connection failed is left out of the rotation for a while (from
//! [`BACKOFF_MIN`], doubling to [`BACKOFF_MAX`]) while others answer; when every endpoint
//! is failing, calls still go to the one due first, so that a restarted upstream is used as
//! soon as it is back, and a call to an upstream that is down fails at once (`UNAVAILABLE`,
//! naming the upstream), never hangs.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::header::{CONNECTION, CONTENT_LENGTH, HOST, TE, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderName, HeaderValue, Request, Response};
use tokio::time::Instant;
use tonic::Status;
use tonic::body::Body;
use tonic::transport::Channel;
use tower::ServiceExt as _;

use super::body::{RequestFailure, UpstreamResponse, WatchedRequest};
use super::error::error_chain;
use super::target::{ChannelOptions, Target, TlsError};
use crate::transcode::timeout::{GRPC_TIMEOUT, format_grpc_timeout, parse_grpc_timeout};

/// The shortest pause before an endpoint whose connection failed is tried again.
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// The longest.
pub const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Headers that belong to one hop (RFC 9110 §7.6.1), never forwarded.
const HOP_BY_HOP: [HeaderName; 6] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    TRANSFER_ENCODING,
    UPGRADE,
    HOST,
];

/// An upstream and its endpoints.
pub struct Upstream {
    name: Arc<str>,
    endpoints: Vec<Endpoint>,
    next: AtomicUsize,
    max_timeout: Option<Duration>,
}

/// One address of an upstream and what is known of it.
pub(super) struct Endpoint {
    target: Target,
    channel: Channel,
    state: Mutex<EndpointState>,
}

#[derive(Default)]
struct EndpointState {
    /// Connection failures in a row.
    failures: u32,
    /// While failing: not before this (see [`BACKOFF_MIN`]).
    retry_at: Option<Instant>,
    /// When its health was last checked.
    checked_at: Option<Instant>,
}

impl Upstream {
    /// An upstream called `name` at `targets` (one or more). `max_timeout` caps the
    /// deadline forwarded with each call (the gateway's `max_call_timeout`).
    pub fn new(
        name: &str,
        targets: &[Target],
        options: &ChannelOptions,
        max_timeout: Option<Duration>,
    ) -> Result<Self, TlsError> {
        let endpoints = targets
            .iter()
            .map(|t| Ok(Endpoint { target: t.clone(), channel: t.channel(options)?, state: Mutex::default() }))
            .collect::<Result<_, TlsError>>()?;
        Ok(Self { name: describe(name, targets).into(), endpoints, next: AtomicUsize::new(0), max_timeout })
    }

    /// How errors name it: `NAME (ADDRESS)`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A channel to one of its endpoints (the next in turn), for discovery.
    pub fn channel(&self) -> Channel {
        self.pick().channel.clone()
    }

    pub(super) fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// Whether some endpoint is not failing.
    pub fn is_up(&self) -> bool {
        self.endpoints.iter().any(|e| e.state().failures == 0)
    }

    fn pick(&self) -> &Endpoint {
        let now = Instant::now();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.endpoints.len();
        (0..n)
            .map(|i| &self.endpoints[(start + i) % n])
            .find(|e| e.state().retry_at.is_none_or(|at| at <= now))
            .or_else(|| self.endpoints.iter().min_by_key(|e| e.state().retry_at))
            .expect("an upstream has at least one endpoint")
    }

    /// Forwards one native gRPC call.
    pub async fn forward(&self, req: Request<Body>) -> Response<Body> {
        let endpoint = self.pick();
        let failure = RequestFailure::default();
        let req = self.prepare(req, &failure);
        match endpoint.channel.clone().oneshot(req).await {
            Ok(resp) => {
                endpoint.succeeded();
                let (mut parts, body) = resp.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                let body = UpstreamResponse::new(body, self.name.clone(), failure);
                Response::from_parts(parts, Body::new(body))
            }
            Err(error) => {
                let status = failure.get().unwrap_or_else(|| {
                    endpoint.failed();
                    Status::unavailable(format!("upstream {} is unavailable: {}", self.name, error_chain(&error)))
                });
                status.into_http()
            }
        }
    }

    fn prepare(&self, req: Request<Body>, failure: &RequestFailure) -> Request<Body> {
        let (mut parts, body) = req.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        // The body may have been translated on the way (gRPC-Web text): its length is the
        // stream's business.
        parts.headers.remove(CONTENT_LENGTH);
        parts.headers.insert(TE, HeaderValue::from_static("trailers"));
        // The deadline the upstream gets: the caller's, capped by the gateway's policy.
        let asked = parts.headers.get(GRPC_TIMEOUT).and_then(|v| v.to_str().ok()).and_then(parse_grpc_timeout);
        let timeout = match (asked, self.max_timeout) {
            (Some(a), Some(m)) => Some(a.min(m)),
            (a, m) => a.or(m),
        };
        if let Some(t) = timeout
            && let Ok(v) = HeaderValue::from_str(&format_grpc_timeout(t))
        {
            parts.headers.insert(GRPC_TIMEOUT, v);
        }
        let body = Body::new(WatchedRequest { inner: body, failure: failure.clone() });
        Request::from_parts(parts, body)
    }
}

impl Endpoint {
    fn state(&self) -> std::sync::MutexGuard<'_, EndpointState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn channel(&self) -> Channel {
        self.channel.clone()
    }

    pub(super) fn target(&self) -> &Target {
        &self.target
    }

    /// When its health should next be checked: `interval` after the last check, or, while
    /// it fails, when its backoff ends.
    pub(super) fn check_due(&self, interval: Duration) -> Instant {
        let state = self.state();
        match (state.retry_at, state.checked_at) {
            (Some(at), _) => at,
            (None, Some(checked)) => checked + interval,
            (None, None) => Instant::now(),
        }
    }

    pub(super) fn succeeded(&self) {
        let mut state = self.state();
        if state.failures > 0 {
            tracing::info!(target = %self.target, "upstream endpoint is back");
        }
        *state = EndpointState { checked_at: Some(Instant::now()), ..EndpointState::default() };
    }

    pub(super) fn failed(&self) {
        let mut state = self.state();
        let backoff = BACKOFF_MIN.saturating_mul(1 << state.failures.min(16)).min(BACKOFF_MAX);
        state.failures = state.failures.saturating_add(1);
        state.retry_at = Some(Instant::now() + backoff);
        state.checked_at = Some(Instant::now());
        if state.failures == 1 {
            tracing::warn!(target = %self.target, "upstream endpoint failed");
        }
    }
}

fn describe(name: &str, targets: &[Target]) -> String {
    let addresses: Vec<String> = targets.iter().map(Target::to_string).collect();
    if addresses.len() == 1 && addresses[0] == name {
        name.to_owned()
    } else {
        format!("{name} ({})", addresses.join(", "))
    }
}

fn strip_hop_by_hop(headers: &mut http::HeaderMap) {
    // `Connection` may name more headers that belong to the hop.
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in HOP_BY_HOP.iter().chain(&named) {
        headers.remove(name);
    }
}
