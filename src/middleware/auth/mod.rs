//! Authentication and authorization, one layer on the service stack, so that every protocol
//! (native gRPC, gRPC-Web, Connect, WebSocket) meets the same rules with the same codes.
//!
//! - A call names its key with `authorization: Bearer <key>` or `x-api-key: <key>` (a
//!   WebSocket also with the `portway.bearer.<key>` subprotocol, the `access_token` query
//!   parameter, which its adapter turns into `authorization`, or the `portway-api-key`
//!   cookie when its origin is trusted), or signs the call instead (`sign`).
//! - No credentials, or credentials that match no key: `UNAUTHENTICATED`. A key whose method
//!   patterns (`pattern`) do not cover the call: `PERMISSION_DENIED`. Methods the key file
//!   exempts (by default the health service) need no key.
//! - Keys live in memory as SHA-256 digests only (`keys`); they are never logged.
//!
//! The key that authenticated a call is put in its extensions as [`Principal`], for the rate
//! limits (`super::rate`) and audit records below.
//!
//! The format of the key file and the trade-offs of each WebSocket credential are in
//! `docs/auth.md`.

mod keys;
mod pattern;
mod sign;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, header};
use tonic::Status;
use tonic::body::Body;
use tower::BoxError;

pub use self::keys::{ApiKey, DEFAULT_EXEMPT, KeyFileError, KeySet};
pub use self::sign::{
    CONTENT_HEADER, KEY_ID_HEADER, NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, UNSIGNED_PAYLOAD, string_to_sign,
};
use self::sign::{ReplayCache, SignedBody};
use crate::protocol::Protocol;

/// The `x-api-key` request header.
pub const API_KEY_HEADER: &str = "x-api-key";
/// The cookie a WebSocket may carry its key in (only honoured on WebSocket upgrades, whose
/// adapter forwards cookies only from trusted origins).
pub const API_KEY_COOKIE: &str = "portway-api-key";

/// The key that authenticated a call, in the request's extensions below [`AuthLayer`] and in
/// the response's above it.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The key's id from the key file.
    pub key_id: Arc<str>,
    /// The key's own call quota and concurrency (from the key file).
    pub limits: KeyLimits,
}

/// A key's own limits from the key file (`None`: the gateway's defaults).
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyLimits {
    /// Calls per second.
    pub rate_per_second: Option<u32>,
    /// Calls beyond the steady rate allowed at once.
    pub burst: Option<u32>,
    /// Calls open at once.
    pub max_concurrent: Option<u32>,
}

/// Settings of [`AuthLayer`] besides the keys.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AuthOptions {
    /// How far a signed call's timestamp may be from the gateway's clock, either way.
    /// Default: 300 s.
    pub clock_skew: Duration,
    /// Signatures remembered to refuse replays (each for twice `clock_skew`). When full, a
    /// signed call is refused with `RESOURCE_EXHAUSTED` rather than unprotected. Default: 100,000.
    pub replay_cache_entries: usize,
    /// The largest body a signed call with a payload digest may have (it is held until its
    /// digest is checked). Default: 4 MiB.
    pub max_signed_body_bytes: usize,
}

impl Default for AuthOptions {
    fn default() -> Self {
        Self { clock_skew: Duration::from_secs(300), replay_cache_entries: 100_000, max_signed_body_bytes: 4 << 20 }
    }
}

/// Adds [`Auth`] to the stack: pass it to [`crate::GatewayBuilder::shared_layer`] (or `layer`).
#[derive(Clone)]
pub struct AuthLayer {
    policy: Arc<Policy>,
}

struct Policy {
    keys: KeySet,
    options: AuthOptions,
    replays: ReplayCache,
}

impl AuthLayer {
    /// Checks every call against `keys`.
    pub fn new(keys: KeySet, options: AuthOptions) -> Self {
        let replays = ReplayCache::new(options.replay_cache_entries, options.clock_skew * 2);
        Self { policy: Arc::new(Policy { keys, options, replays }) }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = Auth<S>;
    fn layer(&self, inner: S) -> Auth<S> {
        Auth { inner, policy: self.policy.clone() }
    }
}

/// See the [module docs](self). Its clones share one state: add it with
/// [`crate::GatewayBuilder::shared_layer`].
#[derive(Clone)]
pub struct Auth<S> {
    inner: S,
    policy: Arc<Policy>,
}

/// What the policy decided about a call.
enum Verdict {
    Exempt,
    Allowed(Principal, Option<SignedBody>),
    Refused(Status),
}

impl Policy {
    fn decide(&self, req: &Request<Body>) -> Verdict {
        let path = req.uri().path();
        if self.keys.is_exempt(path) {
            return Verdict::Exempt;
        }
        let headers = req.headers();
        let websocket = req.extensions().get::<Protocol>() == Some(&Protocol::WebSocket);
        let (key, body) = if sign::is_signed(headers) {
            match sign::verify(headers, path, &self.keys, &self.replays, self.options.clock_skew) {
                Ok(pair) => pair,
                Err(status) => return Verdict::Refused(status),
            }
        } else {
            let Some(presented) = presented_key(headers, websocket) else {
                return Verdict::Refused(Status::unauthenticated(
                    "this call needs an API key: send `authorization: Bearer <key>` or `x-api-key: <key>`",
                ));
            };
            match self.keys.find(presented.as_bytes()) {
                Some(key) if key.require_signature => {
                    return Verdict::Refused(Status::unauthenticated(format!(
                        "the API key {:?} may only make signed calls",
                        key.id
                    )));
                }
                Some(key) => (key, None),
                None => return Verdict::Refused(Status::unauthenticated("the API key is not valid")),
            }
        };
        if !key.allows(path) {
            return Verdict::Refused(Status::permission_denied(format!(
                "the API key {:?} may not call {}",
                key.id,
                path.trim_start_matches('/')
            )));
        }
        let limits =
            KeyLimits { rate_per_second: key.rate_per_second, burst: key.burst, max_concurrent: key.max_concurrent };
        Verdict::Allowed(Principal { key_id: Arc::from(key.id.as_str()), limits }, body)
    }
}

/// The key a call presents, if any: `authorization: Bearer`, then `x-api-key`, then (on a
/// WebSocket only) the cookie.
fn presented_key(headers: &HeaderMap, websocket: bool) -> Option<String> {
    let bearer = headers.get_all(header::AUTHORIZATION).iter().find_map(|v| {
        let v = v.to_str().ok()?;
        let (scheme, token) = v.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
    });
    bearer
        .or_else(|| headers.get(API_KEY_HEADER).and_then(|v| v.to_str().ok()).map(|v| v.trim().to_owned()))
        .or_else(|| if websocket { cookie_key(headers) } else { None })
        .filter(|k| !k.is_empty())
}

fn cookie_key(headers: &HeaderMap) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|c| {
        let (name, value) = c.trim().split_once('=')?;
        (name == API_KEY_COOKIE).then(|| value.to_owned())
    })
}

/// A trailers-only gRPC response carrying `status`.
pub(crate) fn refusal(status: Status) -> Response<Body> {
    let (parts, ()) = status.into_http::<()>().into_parts();
    Response::from_parts(parts, Body::empty())
}

impl<S, B> tower::Service<Request<Body>> for Auth<S>
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

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let mut accepted = None;
        match self.policy.decide(&req) {
            Verdict::Refused(status) => {
                tracing::debug!(method = req.uri().path(), code = ?status.code(), "call refused");
                return Box::pin(std::future::ready(Ok(refusal(status))));
            }
            Verdict::Exempt => {}
            Verdict::Allowed(principal, signed) => {
                // Also on the response, for the layers above (the audit record's key id).
                accepted = Some(principal.clone());
                req.extensions_mut().insert(principal);
                if let Some(signed) = signed {
                    let limit = self.policy.options.max_signed_body_bytes;
                    req = req.map(|body| Body::new(signed.wrap(body, limit)));
                }
            }
        }
        let fut = self.inner.call(req);
        Box::pin(async move {
            let mut resp = fut.await.map_err(Into::into)?;
            if let Some(principal) = accepted {
                resp.extensions_mut().insert(principal);
            }
            Ok(resp.map(Body::new))
        })
    }
}

#[cfg(test)]
mod tests;
