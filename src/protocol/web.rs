//! Plain HTTP: static files (`crate::web_assets`), `/healthz` and `/metrics`.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::IntoResponse;
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

/// What the plain HTTP routes read.
struct Web<S> {
    invoker: Invoker<S>,
    metrics: Arc<Metrics>,
    upstreams: Option<Upstreams>,
}

/// The adapter for everything that is not an RPC: an axum router whose `/healthz` asks the
/// stack behind `invoker`, whose `/metrics` renders `metrics`, and which hands everything
/// else to `files` (none: 404). `/healthz` also reports each of `upstreams`.
pub(crate) fn service<S: GrpcService>(
    invoker: Invoker<S>,
    metrics: Arc<Metrics>,
    files: Option<Router>,
    upstreams: Option<Upstreams>,
) -> Router {
    let state = Arc::new(Web { invoker, metrics, upstreams });
    let router =
        Router::new().route("/healthz", get(healthz::<S>)).route("/metrics", get(render::<S>)).with_state(state);
    match files {
        Some(files) => router.fallback_service(files),
        None => router.fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") }),
    }
}

/// `GET /healthz`: asks the mounted `grpc.health.v1.Health` service (in-process, through
/// the same stack as every call) for the server's overall status; in proxy mode, one more line
/// per upstream (`upstream NAME: SERVING`), and 503 while some upstream has no endpoint up.
async fn healthz<S: GrpcService>(State(web): State<Arc<Web<S>>>) -> impl IntoResponse {
    let setup = CallSetup { path: "/grpc.health.v1.Health/Check".into(), ..Default::default() };
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

async fn render<S: GrpcService>(State(web): State<Arc<Web<S>>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, HeaderValue::from_static(crate::metrics::CONTENT_TYPE))], Body::from(web.metrics.render()))
}
