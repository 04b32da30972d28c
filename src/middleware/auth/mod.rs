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
//! - The plain HTTP routes (`/healthz`, `/metrics`, the demo's files) are decided by the same
//!   policy (`policy`), as HTTP 401 and 403 (`plain`), when the key file puts them under keys.
//!
//! The key that authenticated a call is put in its extensions as [`Principal`], for the rate
//! limits (`super::rate`) and audit records below.
//!
//! The format of the key file and the trade-offs of each WebSocket credential are in
//! `docs/auth.md`.

mod keys;
mod pattern;
mod plain;
mod policy;
mod sign;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use tonic::Status;
use tonic::body::Body;
use tower::BoxError;

pub use self::keys::{ApiKey, DEFAULT_EXEMPT, KeyFileError, KeySet};
use self::pattern::Target;
use self::plain::Approved;
pub use self::policy::{API_KEY_COOKIE, API_KEY_HEADER, AuthOptions, KeyLimits, Principal};
use self::policy::{Policy, Verdict};
use self::sign::ReplayCache;
pub use self::sign::{
    CONTENT_HEADER, KEY_ID_HEADER, NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, UNSIGNED_PAYLOAD, string_to_sign,
};
use crate::protocol::Protocol;

/// Adds [`Auth`] to the stack: pass it to [`crate::GatewayBuilder::auth`], which adds it as
/// [`crate::GatewayBuilder::shared_layer`] does and also puts the plain HTTP routes under it
/// (with `shared_layer` or `layer`, only the calls are).
#[derive(Clone)]
pub struct AuthLayer {
    policy: Arc<Policy>,
}

impl AuthLayer {
    /// Checks every call against `keys`.
    pub fn new(keys: KeySet, options: AuthOptions) -> Self {
        let replays = ReplayCache::new(options.replay_cache_entries, options.clock_skew * 2);
        Self { policy: Arc::new(Policy { keys, options, replays }) }
    }

    /// The same policy for the gateway's plain HTTP routes.
    pub(crate) fn plain_guard(&self) -> crate::protocol::web::Guard {
        plain::guard(self.policy.clone())
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

/// Decides a call on the stack: one that a plain route makes for a request it allowed gets
/// what the request got; any other, what `policy` decides.
fn decide_call(policy: &Policy, req: &Request<Body>) -> Verdict {
    let path = req.uri().path();
    if let Some(approved) = req.extensions().get::<Approved>().filter(|a| a.covers(path)) {
        return approved.verdict();
    }
    let websocket = req.extensions().get::<Protocol>() == Some(&Protocol::WebSocket);
    policy.decide(Target::Call(path), path, req.headers(), websocket)
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
        match decide_call(&self.policy, &req) {
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
