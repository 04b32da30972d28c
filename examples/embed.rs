//! Run with: `cargo run --example embed` then, from another shell,
//! `curl -s -X POST -H 'content-type: application/json' -H 'x-api-key: secret' -d '{}' http://127.0.0.1:8090/grpc.testing.TestService/EmptyCall`
//!
//! Embeds portway as a library: mounts a tonic service behind the real listener and puts an
//! API-key check on the service stack. Because every protocol ends in that stack, native gRPC,
//! gRPC-Web, Connect/JSON (and WebSocket) calls all need the key; none can bypass it.

use std::convert::Infallible;
use std::task::{Context, Poll};

use http::{Request, Response};
use tonic::body::Body;
use tonic::service::Routes;

/// Refuses calls without `x-api-key: secret` with `UNAUTHENTICATED`.
#[derive(Clone)]
struct RequireApiKey<S> {
    inner: S,
}

impl<S> tower::Service<Request<Body>> for RequireApiKey<S>
where
    S: tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        if req.headers().get("x-api-key").is_some_and(|v| v == "secret") {
            Box::pin(self.inner.call(req))
        } else {
            let status = tonic::Status::unauthenticated("missing or wrong x-api-key");
            Box::pin(async move { Ok(status.into_http()) })
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let test_service = portway::services::interop::service(4 * 1024 * 1024);
    let routes = Routes::new(test_service);
    let gateway = portway::Gateway::builder(RequireApiKey { inner: routes }).build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8090").await?;
    println!("listening on http://{}", listener.local_addr()?);
    portway::serve(listener, gateway, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
