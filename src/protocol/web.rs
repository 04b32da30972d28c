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

use crate::gateway::Shared;
use crate::pb::grpc::health::v1::{HealthCheckRequest, HealthCheckResponse, health_check_response::ServingStatus};
use crate::transcode::{CallSetup, RequestMessages, call};

/// The router for everything that is not an RPC.
pub fn router(shared: Arc<Shared>) -> Router {
    let router =
        Router::new().route("/healthz", get(healthz)).route("/metrics", get(metrics)).with_state(shared.clone());
    match crate::web_assets::service(&shared.config) {
        Some(files) => router.fallback_service(files),
        None => router.fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") }),
    }
}

/// `GET /healthz`: asks the mounted `grpc.health.v1.Health` service (in-process, through
/// the same stack as every call) for the server's overall status.
async fn healthz(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let setup = CallSetup { path: "/grpc.health.v1.Health/Check".into(), ..Default::default() };
    let request = Bytes::from(HealthCheckRequest { service: String::new() }.encode_to_vec());
    let mut call = call::start(&shared.stack, setup, RequestMessages::One(request), 1024).await;
    let (code, text) = match call.unary().await {
        Ok((bytes, _)) => match HealthCheckResponse::decode(bytes).map(|r| r.status()) {
            Ok(ServingStatus::Serving) => (StatusCode::OK, "SERVING".to_string()),
            Ok(other) => (StatusCode::SERVICE_UNAVAILABLE, other.as_str_name().to_string()),
            Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "UNKNOWN".to_string()),
        },
        Err(status) => (StatusCode::SERVICE_UNAVAILABLE, format!("{:?}: {}", status.code(), status.message())),
    };
    (code, [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))], text + "\n")
}

async fn metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"))],
        Body::from(shared.metrics.render()),
    )
}
