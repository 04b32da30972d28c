//! The plain HTTP routes (`/healthz`, `/metrics`, the demo's files) under the key file: the
//! same [`Policy`] that decides calls decides them, with the same credentials (`authorization:
//! Bearer`, `x-api-key`, or a signature; never the cookie, which a foreign page's request
//! would carry), answered in HTTP: 401 with `www-authenticate: Bearer`, or 403.
//!
//! A request allowed on `/healthz` may make the health check that route makes for it on the
//! stack ([`Approved`]), whether or not the key file lets it call the health service itself.

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, header};
use tonic::{Code, Status};

use super::pattern::Target;
use super::policy::{Policy, Principal, Verdict};
use crate::protocol::web::{Guard, PlainRoute};
use crate::transcode::status::http_status;

/// The `www-authenticate` challenge of a 401 (RFC 6750).
const CHALLENGE: &str = "Bearer realm=\"portway\"";

/// A request allowed on a plain route, carried into the calls the route makes for it, and
/// honoured for those calls only. Its fields are private: nothing else can make one.
#[derive(Debug, Clone)]
pub(super) struct Approved {
    route: PlainRoute,
    principal: Option<Principal>,
}

impl Approved {
    /// Whether the call to `path` is one the route makes.
    pub(super) fn covers(&self, path: &str) -> bool {
        self.route.calls().contains(&path)
    }

    /// What the call gets: what the request got.
    pub(super) fn verdict(&self) -> Verdict {
        match &self.principal {
            Some(principal) => Verdict::Allowed(principal.clone(), None),
            None => Verdict::Exempt,
        }
    }
}

/// The gateway's guard for its plain routes, deciding with `policy`.
pub(super) fn guard(policy: Arc<Policy>) -> Guard {
    Arc::new(move |route, parts| {
        // A signature signs the path as sent; the route's patterns decide what it may reach.
        // The body is never read on these routes, so a signed digest of it is not checked.
        let principal = match policy.decide(Target::Route(route), parts.uri.path(), &parts.headers, false) {
            Verdict::Exempt => None,
            Verdict::Allowed(principal, _) => Some(principal),
            Verdict::Refused(status) => return Err(Box::new(refusal(&status))),
        };
        let mut extensions = http::Extensions::new();
        extensions.insert(Approved { route, principal });
        Ok(extensions)
    })
}

/// The HTTP answer to a refused request: the status's code as Connect maps it (401, 403; 429
/// when the replay cache is full), its message as the body.
fn refusal(status: &Status) -> Response {
    let mut resp = Response::new(Body::from(format!("{}\n", status.message())));
    *resp.status_mut() = http_status(status.code());
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status.code() == Code::Unauthenticated {
        headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(CHALLENGE));
    }
    resp
}
