//! Each upstream's health, checked in the background: every endpoint is asked
//! `grpc.health.v1.Health/Check` (an upstream without a health service counts as up when it
//! answers at all) every `interval`, and an endpoint that failed is tried again when its
//! backoff ends, so it rejoins the rotation once it is back even when no call comes. The
//! catalog reports the upstream's services to portway's health service as SERVING while some
//! endpoint is, NOT_SERVING otherwise.

use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::time::Instant;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus as Answer;
use tonic_health::pb::health_client::HealthClient;

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

/// Checks `upstream`'s endpoints until `owner` is gone, calling `report(up)` whenever
/// whether some endpoint is up changes (and once at first).
pub(super) async fn monitor<T, F, Fut>(
    owner: Weak<T>,
    upstream: Arc<Upstream>,
    interval: Duration,
    timeout: Duration,
    mut report: F,
) where
    F: FnMut(bool) -> Fut,
    Fut: Future<Output = ()>,
{
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
        if owner.strong_count() == 0 {
            return;
        }
        let up = upstream.is_up();
        if reported != Some(up) {
            report(up).await;
            reported = Some(up);
        }
        let next = upstream.endpoints().iter().map(|e| e.check_due(interval)).min().unwrap_or_else(Instant::now);
        tokio::time::sleep_until(next.max(Instant::now() + Duration::from_millis(10))).await;
    }
}
