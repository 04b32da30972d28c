//! The policy: what a request presents (a key, a signature) and what the key file lets it
//! reach, decided once for calls on the stack (`super`) and for the plain HTTP routes
//! (`super::plain`).

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, header};
use tonic::Status;

use super::keys::KeySet;
use super::pattern::Target;
use super::sign::{self, ReplayCache, SignedBody};
use crate::protocol::web::PlainRoute;

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

/// The keys and settings every decision reads.
pub(super) struct Policy {
    pub(super) keys: KeySet,
    pub(super) options: AuthOptions,
    pub(super) replays: ReplayCache,
}

/// What the policy decided about a call or a plain request.
pub(super) enum Verdict {
    Exempt,
    Allowed(Principal, Option<SignedBody>),
    Refused(Status),
}

impl Policy {
    /// Decides a request for `target`, whose request path is `path` (what a signature signs);
    /// `cookie`: whether the key may come in a cookie (WebSocket upgrades only).
    pub(super) fn decide(&self, target: Target<'_>, path: &str, headers: &HeaderMap, cookie: bool) -> Verdict {
        if self.keys.is_exempt(target) {
            return Verdict::Exempt;
        }
        let (key, body) = if sign::is_signed(headers) {
            match sign::verify(headers, path, &self.keys, &self.replays, self.options.clock_skew) {
                Ok(pair) => pair,
                Err(status) => return Verdict::Refused(status),
            }
        } else {
            let Some(presented) = presented_key(headers, cookie) else {
                let what = if matches!(target, Target::Call(_)) { "call" } else { "request" };
                return Verdict::Refused(Status::unauthenticated(format!(
                    "this {what} needs an API key: send `authorization: Bearer <key>` or `x-api-key: <key>`"
                )));
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
        if !key.covers(target) {
            let what = match target {
                Target::Call(path) => format!("call {}", path.trim_start_matches('/')),
                Target::Route(route) => format!("read {}", describe(route)),
            };
            return Verdict::Refused(Status::permission_denied(format!("the API key {:?} may not {what}", key.id)));
        }
        let limits =
            KeyLimits { rate_per_second: key.rate_per_second, burst: key.burst, max_concurrent: key.max_concurrent };
        Verdict::Allowed(Principal { key_id: Arc::from(key.id.as_str()), limits }, body)
    }
}

/// The key a call presents, if any: `authorization: Bearer`, then `x-api-key`, then (on a
/// WebSocket only) the cookie.
pub(super) fn presented_key(headers: &HeaderMap, websocket: bool) -> Option<String> {
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

/// How a plain route is named in a refusal.
fn describe(route: PlainRoute) -> &'static str {
    match route {
        PlainRoute::Files => "the demo's files",
        other => other.name(),
    }
}
