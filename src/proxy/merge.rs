//! Health for every service portway serves, whoever implements it: portway's own health
//! service (its reporter: the state store, the upstreams' services), an embedder's health
//! service if its routes have one, and the services of the descriptors portway was given,
//! which count as serving unless someone says otherwise.
//!
//! A `Check` or `Watch` goes to portway's health service when that knows the service, else to
//! the embedder's when that knows it, else (for a described service, first registered as
//! serving; for any other, to answer `NOT_FOUND`) to portway's.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt as _;
use prost::Message as _;
use tonic::Code;
use tonic::body::Body;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tower::ServiceExt as _;

use super::catalog::Catalog;
use crate::transcode::framing::{FLAG_COMPRESSED, HEADER_LEN};

/// `grpc.health.v1.Health`.
pub(super) const HEALTH: &str = "grpc.health.v1.Health";

/// The largest health request read (a service name).
const MAX_REQUEST: usize = 64 * 1024;

/// Whether `health` knows `service` (answers anything but `NOT_FOUND` or `UNIMPLEMENTED`).
async fn knows<S>(health: S, service: &str) -> bool
where
    S: tonic::client::GrpcService<Body> + Send,
    S::Error: Into<BoxError>,
    S::ResponseBody: http_body::Body<Data = Bytes> + Send + 'static,
    <S::ResponseBody as http_body::Body>::Error: Into<BoxError> + Send,
{
    let mut client = HealthClient::new(health);
    match client.check(HealthCheckRequest { service: service.to_owned() }).await {
        Ok(_) => true,
        Err(status) => !matches!(status.code(), Code::NotFound | Code::Unimplemented),
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

fn boxed<E: Into<BoxError>>(e: E) -> BoxError {
    e.into()
}

/// Answers one health call (see the [module docs](self)).
pub(super) async fn health<S>(req: Request<Body>, catalog: Catalog, inner: S) -> Response<Body>
where
    S: tower::Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    let own = catalog.health_service();
    let (parts, body) = req.into_parts();
    let body = match http_body_util::Limited::new(body, MAX_REQUEST).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return tonic::Status::resource_exhausted("a health request larger than 64 KiB, or one that failed")
                .into_http();
        }
    };
    let service = match body.get(..HEADER_LEN) {
        // A compressed request is for portway's own service to read.
        Some([flags, ..]) if flags & FLAG_COMPRESSED == 0 => {
            HealthCheckRequest::decode(&body[HEADER_LEN..]).ok().map(|r| r.service)
        }
        _ => None,
    };
    let req = Request::from_parts(parts, Body::new(http_body_util::Full::new(body)));
    if let Some(service) = service
        && !service.is_empty()
        && !knows(own.clone(), &service).await
    {
        let inner_knows = knows(tower::util::MapErr::new(inner.clone(), boxed::<S::Error>), &service).await;
        if inner_knows {
            return match inner.oneshot(req).await {
                Ok(resp) => resp,
                Err(e) => tonic::Status::unavailable(super::error::error_chain(&*e.into())).into_http(),
            };
        }
        if catalog.describes(&service) {
            catalog.report_serving(&service).await;
        }
    }
    match own.oneshot(req).await {
        Ok(resp) => resp,
        Err(never) => match never {},
    }
}
