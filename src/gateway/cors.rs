//! The CORS layer, built from [`crate::config::CorsConfig`].

use http::{HeaderName, Method};
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer, ExposeHeaders};

use crate::config::{AllowedOrigins, Config};

/// Response headers every browser client needs to read, whatever the protocol.
const EXPOSED: [&str; 5] =
    ["grpc-status", "grpc-message", "grpc-status-details-bin", "grpc-encoding", "connect-content-encoding"];

pub(super) fn layer(config: &Config) -> CorsLayer {
    let cors = &config.cors;
    let mut expose: Vec<HeaderName> = EXPOSED.iter().map(|h| HeaderName::from_static(h)).collect();
    expose.extend(cors.expose_headers.iter().cloned());
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        // Browsers list what they send (content-type, x-grpc-web, grpc-timeout,
        // connect-timeout-ms, custom metadata): all of it is metadata to us.
        .allow_headers(AllowHeaders::mirror_request())
        .expose_headers(ExposeHeaders::list(expose))
        .max_age(cors.max_age);
    match &cors.allowed_origins {
        AllowedOrigins::Any => layer.allow_origin(AllowOrigin::any()),
        AllowedOrigins::List(origins) => {
            layer.allow_origin(AllowOrigin::list(origins.iter().cloned())).allow_credentials(cors.allow_credentials)
        }
    }
}
