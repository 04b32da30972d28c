//! Run with: `cargo run --example embed` then, from another shell,
//! `curl -s -X POST -H 'content-type: application/json' -H 'x-api-key: secret' -d '{}' http://127.0.0.1:8090/grpc.testing.TestService/EmptyCall`
//!
//! Embeds portway as a library: mounts a tonic service behind the real listener and puts an
//! API-key check and a rate limit on the service stack, with `GatewayBuilder::layer` and no
//! code of its own around them. Because every protocol ends in that stack, native gRPC,
//! gRPC-Web, Connect/JSON and WebSocket calls all need the key and all share the one limit;
//! none can bypass them.

use std::time::Duration;

use tonic::service::{InterceptorLayer, Routes};
use tower::limit::RateLimitLayer;
use tower::load_shed::LoadShedLayer;

/// Refuses calls without `x-api-key: secret` with `UNAUTHENTICATED`.
fn require_api_key(req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    match req.metadata().get("x-api-key") {
        Some(key) if key == "secret" => Ok(req),
        _ => Err(tonic::Status::unauthenticated("missing or wrong x-api-key")),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let test_service = portway::services::interop::service(4 * 1024 * 1024);
    let gateway = portway::Gateway::builder(Routes::new(test_service))
        .layer(InterceptorLayer::new(require_api_key))
        // 100 calls a second for the whole gateway; beyond that, RESOURCE_EXHAUSTED at once
        // instead of a queue (`RateLimit` alone would make callers wait).
        .layer(LoadShedLayer::new())
        .layer(RateLimitLayer::new(100, Duration::from_secs(1)))
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8090").await?;
    println!("listening on http://{}", listener.local_addr()?);
    portway::serve(listener, gateway, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
