//! Each upstream's health, checked in the background: every endpoint is asked
//! `grpc.health.v1.Health/Check` (an upstream without a health service counts as up when it
//! answers at all) every `interval`, and an endpoint that failed is tried again when its
//! backoff ends, so it rejoins the rotation once it is back even when no call comes. The
//! upstream's services are reported to portway's health service as SERVING while some
//! endpoint is, NOT_SERVING otherwise.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::time::Instant;
use tonic::Code;
use tonic_health::ServingStatus;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus as Answer;
use tonic_health::pb::health_client::HealthClient;

use super::catalog::Inner;
use super::upstream::{Endpoint, Upstream};

/// Whether `endpoint` answers its health check (within `timeout`) and says it serves.
async fn check(endpoint: &Endpoint, timeout: Duration) -> Result<(), String> {
    let mut client = HealthClient::new(endpoint.channel());
    let mut request = tonic::Request::new(HealthCheckRequest { service: String::new() });
    request.set_timeout(timeout);
    match tokio::time::timeout(timeout, client.check(request)).await {
        Err(_) => Err(format!("no answer within {timeout:?}")),
        Ok(Ok(resp)) if resp.get_ref().status() == Answer::Serving => Ok(()),
        Ok(Ok(resp)) => Err(format!("it reports {}", resp.get_ref().status().as_str_name())),
        // It answered: it is there, it just has no health service.
        Ok(Err(status)) if status.code() == Code::Unimplemented => Ok(()),
        Ok(Err(status)) => Err(format!("{:?}: {}", status.code(), status.message())),
    }
}

/// Checks `upstream`'s endpoints until the catalog is gone.
pub(super) async fn monitor(catalog: Weak<Inner>, upstream: Arc<Upstream>, interval: Duration, timeout: Duration) {
    let mut reported: Option<bool> = None;
    loop {
        for endpoint in upstream.endpoints() {
            if endpoint.check_due(interval) <= Instant::now() {
                match check(endpoint, timeout).await {
                    Ok(()) => endpoint.succeeded(),
                    Err(reason) => {
                        tracing::debug!(target = %endpoint.target(), %reason, "upstream health check failed");
                        endpoint.failed();
                    }
                }
            }
        }
        let Some(inner) = catalog.upgrade() else { return };
        let up = upstream.is_up();
        if reported != Some(up) {
            let status = if up { ServingStatus::Serving } else { ServingStatus::NotServing };
            for service in inner.services_of(&upstream) {
                inner.health.set_service_status(service, status).await;
            }
            reported = Some(up);
        }
        drop(inner);
        let next = upstream.endpoints().iter().map(|e| e.check_due(interval)).min().unwrap_or_else(Instant::now);
        tokio::time::sleep_until(next.max(Instant::now() + Duration::from_millis(10))).await;
    }
}
