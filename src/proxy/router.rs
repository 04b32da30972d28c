//! The service at the bottom of the stack in proxy mode: each call goes to the upstream that
//! offers its service, or to the local services; server reflection is answered from every
//! service's descriptors (local and upstream), and health for every service (see `merge`),
//! whoever would otherwise answer them.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use tonic::body::Body;
use tower::{Service, ServiceExt as _};

use super::catalog::Catalog;
use super::merge;

/// Routes calls to upstreams or to `local`; see the [module docs](self).
#[derive(Clone)]
pub struct ProxyRouter<S> {
    local: S,
    catalog: Catalog,
}

impl<S> ProxyRouter<S> {
    /// Calls for upstream services go to their upstream, reflection to `catalog`'s merged
    /// view, everything else to `local`.
    pub fn new(local: S, catalog: Catalog) -> Self {
        Self { local, catalog }
    }
}

const REFLECTION: [&str; 2] = ["grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"];

/// The service part of `/pkg.Service/Method`.
fn service_of(path: &str) -> &str {
    path.trim_start_matches('/').split('/').next().unwrap_or_default()
}

impl<S> Service<Request<Body>> for ProxyRouter<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        // Readiness is asked of whichever service takes the call, when it takes it.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let state = self.catalog.state();
        let service = service_of(req.uri().path());
        if REFLECTION.contains(&service) {
            let reflection = state.reflection.clone();
            return Box::pin(async move {
                match reflection.oneshot(req).await {
                    Ok(resp) => Ok(resp),
                    Err(never) => match never {},
                }
            });
        }
        if service == merge::HEALTH {
            let (catalog, local) = (self.catalog.clone(), self.local.clone());
            return Box::pin(async move { Ok(merge::health(req, catalog, local).await) });
        }
        if let Some(upstream) = state.routes.get(service).cloned() {
            return Box::pin(async move { Ok(upstream.forward(req).await) });
        }
        let local = self.local.clone();
        Box::pin(local.oneshot(req))
    }
}
