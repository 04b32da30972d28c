//! Call rate and concurrency limits, one layer on the service stack (below
//! [`super::auth::AuthLayer`], which tells it the call's key), so every protocol shares them:
//!
//! - calls per second per client address (an IPv4 address or an IPv6 /64, as the connection
//!   limits count) and per API key (the key file may give a key its own quota), with
//!   `governor`'s GCRA; over the quota a call fails with `RESOURCE_EXHAUSTED`, a message that
//!   says when to retry, and `retry-after` (seconds) in its metadata, which the HTTP
//!   protocols send as a header;
//! - calls open at once per API key: a call holds its place until its response has ended.
//!
//! Connections per address and in total are the listener's (`HttpConfig`), not this layer's.

use std::collections::HashMap;
use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::{Request, Response};
use http_body::{Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;
use tonic::body::Body;
use tonic::transport::server::TcpConnectInfo;
use tower::BoxError;

use super::auth::{Principal, refusal};
use crate::address::AddressKey;

/// A steady rate with a burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Calls per second, on average.
    pub per_second: NonZeroU32,
    /// Calls that may come at once after a quiet spell.
    pub burst: NonZeroU32,
}

impl Rate {
    fn quota(self) -> Quota {
        Quota::per_second(self.per_second).allow_burst(self.burst)
    }
}

/// What [`RateLayer`] enforces. Every limit is off by default.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RateOptions {
    /// Calls per second from one client address. Default: `None` (no limit).
    pub per_address: Option<Rate>,
    /// Calls per second with one API key, unless the key file gives the key its own.
    /// Default: `None` (no limit).
    pub per_key: Option<Rate>,
    /// Calls open at once with one API key, unless the key file gives the key its own.
    /// Default: `None` (no limit).
    pub max_concurrent_per_key: Option<u32>,
}

/// Adds [`RateLimit`] to the stack: pass it to [`crate::GatewayBuilder::shared_layer`] (or `layer`), after the
/// auth layer.
#[derive(Clone)]
pub struct RateLayer {
    shared: Arc<Shared>,
}

struct Shared {
    options: RateOptions,
    by_address: Option<DefaultKeyedRateLimiter<AddressKey>>,
    /// One entry per key that has made a call (the key file bounds them).
    by_key: Mutex<HashMap<Arc<str>, Arc<KeyState>>>,
}

struct KeyState {
    rate: Option<(DefaultDirectRateLimiter, Rate)>,
    calls: Option<(Arc<Semaphore>, u32)>,
}

/// Addresses tracked before idle ones are forgotten (an address whose bucket is full again
/// is indistinguishable from a new one, so forgetting it changes nothing).
const TRACKED_ADDRESSES: usize = 10_000;

impl RateLayer {
    /// Enforces `options`.
    pub fn new(options: RateOptions) -> Self {
        let by_address = options.per_address.map(|r| RateLimiter::keyed(r.quota()));
        Self { shared: Arc::new(Shared { options, by_address, by_key: Mutex::new(HashMap::new()) }) }
    }
}

impl<S> tower::Layer<S> for RateLayer {
    type Service = RateLimit<S>;
    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit { inner, shared: self.shared.clone() }
    }
}

/// See the [module docs](self). Its clones share one state: add it with
/// [`crate::GatewayBuilder::shared_layer`].
#[derive(Clone)]
pub struct RateLimit<S> {
    inner: S,
    shared: Arc<Shared>,
}

/// `RESOURCE_EXHAUSTED` that says when to retry, with `retry-after` in whole seconds.
fn too_many(what: &str, rate: Rate, wait: Duration) -> Status {
    let mut status = Status::resource_exhausted(format!(
        "rate limit exceeded: {what} may make {} calls per second (bursts of {}); retry in {} ms",
        rate.per_second,
        rate.burst,
        // Rounded up: waiting this long is enough.
        wait.as_micros().div_ceil(1000).max(1)
    ));
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    status.metadata_mut().insert("retry-after", tonic::metadata::MetadataValue::from(secs.max(1)));
    status
}

impl Shared {
    fn key_state(&self, principal: &Principal) -> Option<Arc<KeyState>> {
        let mut map = self.by_key.lock().ok()?;
        if let Some(state) = map.get(&principal.key_id) {
            return Some(state.clone());
        }
        let own = principal.limits;
        let rate = match own.rate_per_second.and_then(NonZeroU32::new) {
            Some(per_second) => {
                let burst = own.burst.and_then(NonZeroU32::new).unwrap_or(per_second);
                Some(Rate { per_second, burst })
            }
            None => self.options.per_key,
        };
        let calls = own.max_concurrent.or(self.options.max_concurrent_per_key);
        let state = Arc::new(KeyState {
            rate: rate.map(|r| (RateLimiter::direct(r.quota()), r)),
            calls: calls.map(|n| (Arc::new(Semaphore::new(n as usize)), n)),
        });
        map.insert(principal.key_id.clone(), state.clone());
        Some(state)
    }

    /// Admits a call, or the status that refuses it; the permit holds its concurrency slot.
    fn admit(&self, req: &Request<Body>) -> Result<Option<OwnedSemaphorePermit>, Status> {
        let clock = DefaultClock::default();
        if let (Some(limiter), Some(rate)) = (&self.by_address, self.options.per_address)
            && let Some(peer) = req.extensions().get::<TcpConnectInfo>().and_then(|i| i.remote_addr)
        {
            if limiter.len() > TRACKED_ADDRESSES {
                limiter.retain_recent();
            }
            if let Err(not_until) = limiter.check_key(&AddressKey::of(peer.ip())) {
                return Err(too_many("one client address", rate, not_until.wait_time_from(clock.now())));
            }
        }
        let Some(principal) = req.extensions().get::<Principal>() else { return Ok(None) };
        let Some(state) = self.key_state(principal) else { return Ok(None) };
        if let Some((limiter, rate)) = &state.rate
            && let Err(not_until) = limiter.check()
        {
            let what = format!("the API key {:?}", principal.key_id);
            return Err(too_many(&what, *rate, not_until.wait_time_from(clock.now())));
        }
        match &state.calls {
            None => Ok(None),
            Some((semaphore, n)) => semaphore.clone().try_acquire_owned().map(Some).map_err(|_| {
                Status::resource_exhausted(format!(
                    "the API key {:?} has {n} calls open, as many as it may; retry when one has ended",
                    principal.key_id
                ))
            }),
        }
    }
}

impl<S, B> tower::Service<Request<Body>> for RateLimit<S>
where
    S: tower::Service<Request<Body>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let permit = match self.shared.admit(&req) {
            Ok(permit) => permit,
            Err(status) => return Box::pin(std::future::ready(Ok(refusal(status)))),
        };
        let fut = self.inner.call(req);
        Box::pin(async move {
            let resp = fut.await.map_err(Into::into)?;
            Ok(match permit {
                Some(permit) => resp.map(|body| Body::new(Holding { inner: body, _permit: permit })),
                None => resp.map(Body::new),
            })
        })
    }
}

pin_project! {
    /// A response body that holds its call's concurrency slot until it is dropped.
    struct Holding<B> {
        #[pin]
        inner: B,
        _permit: OwnedSemaphorePermit,
    }
}

impl<B: http_body::Body> http_body::Body for Holding<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_hint() {
        let rate = Rate { per_second: NonZeroU32::new(2).unwrap(), burst: NonZeroU32::new(3).unwrap() };
        let s = too_many("one client address", rate, Duration::from_millis(1500));
        assert_eq!(s.code(), tonic::Code::ResourceExhausted);
        assert!(s.message().contains("retry in 1500 ms"), "{}", s.message());
        assert_eq!(s.metadata().get("retry-after").unwrap(), "2");
        let s = too_many("x", rate, Duration::from_millis(10));
        assert_eq!(s.metadata().get("retry-after").unwrap(), "1");
    }
}
