//! Plain HTTP: static files (`crate::web_assets`), `/healthz` and `/metrics`, each behind the
//! gateway's [`Guard`] (the API keys, when the key file puts the route under them).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use prost::Message as _;

use crate::metrics::Metrics;
use crate::pb::grpc::health::v1::{HealthCheckRequest, HealthCheckResponse, health_check_response::ServingStatus};
use crate::transcode::{CallSetup, GrpcService, Invoker, RequestMessages};

/// The upstreams of proxy mode, each by name with whether some endpoint of it is up, for
/// `/healthz` to report.
pub(crate) type Upstreams = Arc<dyn Fn() -> Vec<(String, bool)> + Send + Sync>;

/// The plain HTTP routes, as a key file names them (`docs/auth.md`). A request is checked as
/// the route that serves it, whatever its path looks like: a path that does not reach
/// `/healthz` or `/metrics` exactly (`/metrics/`, `//metrics`, `/%6detrics`) is served, and
/// so checked, as a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PlainRoute {
    /// `GET /healthz`.
    Health,
    /// `GET /metrics`, on the gateway's port and on `--metrics-listen`.
    Metrics,
    /// Every other path: the demo page, its libraries, the descriptor set, or a 404.
    Files,
}

/// The path `/healthz` asks the health service at, in-process.
const HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";

impl PlainRoute {
    /// Every route.
    pub(crate) const ALL: [Self; 3] = [Self::Health, Self::Metrics, Self::Files];

    /// The route's name in a key file: `/healthz`, `/metrics`, `/` (the files).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Health => "/healthz",
            Self::Metrics => "/metrics",
            Self::Files => "/",
        }
    }

    /// The calls the route makes on the stack on the request's behalf (`/healthz`: the health
    /// check), which a request allowed on the route may therefore make.
    pub(crate) fn calls(self) -> &'static [&'static str] {
        match self {
            Self::Health => &[HEALTH_CHECK],
            Self::Metrics | Self::Files => &[],
        }
    }
}

/// Decides whether a request may reach `route`: `Ok` with the extensions to carry into the
/// calls the route makes for it (see [`PlainRoute::calls`]), or the refusal to send.
pub(crate) type Guard =
    Arc<dyn Fn(PlainRoute, &http::request::Parts) -> Result<http::Extensions, Box<Response>> + Send + Sync>;

/// What a guarded request carries to its route: see [`Guard`].
#[derive(Clone)]
struct CallExtensions(http::Extensions);

/// What the plain HTTP routes read.
struct Web<S> {
    invoker: Invoker<S>,
    upstreams: Option<Upstreams>,
}

/// The adapter for everything that is not an RPC: an axum router whose `/healthz` asks the
/// stack behind `invoker`, whose `/metrics` renders `metrics`, and which hands everything
/// else to `files` (none: 404). `/healthz` also reports each of `upstreams`. Each route is
/// behind `guard`, if any.
pub(crate) fn service<S: GrpcService>(
    invoker: Invoker<S>,
    metrics: Arc<Metrics>,
    files: Option<Router>,
    upstreams: Option<Upstreams>,
    guard: Option<Guard>,
) -> Router {
    let state = Arc::new(Web { invoker, upstreams });
    let health = Router::new().route("/healthz", get(healthz::<S>)).with_state(state);
    let files = files.unwrap_or_else(|| Router::new().fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") }));
    guarded(health, PlainRoute::Health, &guard).merge(metrics_router(metrics, guard.clone())).fallback_service(guarded(
        files,
        PlainRoute::Files,
        &guard,
    ))
}

/// `/metrics` alone, behind `guard`: on the gateway's port and on `--metrics-listen`.
pub(crate) fn metrics_router(metrics: Arc<Metrics>, guard: Option<Guard>) -> Router {
    guarded(crate::metrics::router(metrics), PlainRoute::Metrics, &guard)
}

fn guarded(router: Router, route: PlainRoute, guard: &Option<Guard>) -> Router {
    match guard {
        Some(guard) => router.layer(middleware::from_fn_with_state((guard.clone(), route), check)),
        None => router,
    }
}

async fn check(State((guard, route)): State<(Guard, PlainRoute)>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    match guard(route, &parts) {
        Ok(extensions) => {
            parts.extensions.insert(CallExtensions(extensions));
            next.run(Request::from_parts(parts, body)).await
        }
        Err(refusal) => {
            tracing::debug!(path = parts.uri.path(), route = route.name(), status = %refusal.status(), "request refused");
            *refusal
        }
    }
}

/// `GET /healthz`: asks the mounted `grpc.health.v1.Health` service (in-process, through
/// the same stack as every call) for the server's overall status; in proxy mode, one more line
/// per upstream (`upstream NAME: SERVING`), and 503 while some upstream has no endpoint up.
async fn healthz<S: GrpcService>(State(web): State<Arc<Web<S>>>, req: Request) -> impl IntoResponse {
    let extensions = req.extensions().get::<CallExtensions>().map(|e| e.0.clone()).unwrap_or_default();
    let setup = CallSetup { path: HEALTH_CHECK.into(), extensions, ..Default::default() };
    let request = Bytes::from(HealthCheckRequest { service: String::new() }.encode_to_vec());
    let mut call = web.invoker.start(setup, RequestMessages::One(request), 1024).await;
    let (mut code, mut text) = match call.unary().await {
        Ok((bytes, _)) => match HealthCheckResponse::decode(bytes).map(|r| r.status()) {
            Ok(ServingStatus::Serving) => (StatusCode::OK, "SERVING".to_string()),
            Ok(other) => (StatusCode::SERVICE_UNAVAILABLE, other.as_str_name().to_string()),
            Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "UNKNOWN".to_string()),
        },
        Err(status) => (StatusCode::SERVICE_UNAVAILABLE, format!("{:?}: {}", status.code(), status.message())),
    };
    for (name, up) in web.upstreams.as_ref().map(|list| list()).unwrap_or_default() {
        text.push_str(&format!("\nupstream {name}: {}", if up { "SERVING" } else { "NOT_SERVING" }));
        if !up {
            code = StatusCode::SERVICE_UNAVAILABLE;
        }
    }
    (code, [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))], text + "\n")
}
