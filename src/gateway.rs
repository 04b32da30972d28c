//! The routing service: CORS outermost (for the requests that need it), then [`classify`],
//! then one adapter per protocol, each a tower service the gateway builds and owns, every
//! one of which ends in the same service stack (assembled in `stack`).

mod cors;
mod stack;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use futures_util::future::Either;
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use tonic::service::Routes;
use tower::layer::util::{Identity, Stack};
use tower::{Layer as _, Service, ServiceExt as _};
use tower_http::cors::Cors;

pub use self::stack::{HideProtocol, SharedLayers, StackLayers};
use crate::config::Config;
use crate::drain::Shutdown;
use crate::metrics::Metrics;
use crate::protocol::connect::ConnectService;
use crate::protocol::grpc::{self, GrpcJson, GrpcWebAdapter};
use crate::protocol::websocket::WebSocketService;
use crate::protocol::{Protocol, classify, web};
use crate::proxy::{Catalog, CatalogError, ProxyRouter};
use crate::transcode::{GrpcStack, Invoker, MethodTable, SharedMethods};

/// Requests that may wait at once for a layered stack's buffer (see
/// [`GatewayBuilder::buffer_capacity`]).
const DEFAULT_BUFFER: usize = 1024;

/// The gateway: one tower service that serves every protocol. Build it with
/// [`Gateway::builder`], serve it with [`crate::serve`].
#[derive(Clone)]
pub struct Gateway {
    // Behind one `Arc`: hyper clones the service for every request.
    adapters: Arc<Adapters>,
}

/// The adapters, one per protocol, all on the same stack.
struct Adapters {
    grpc: GrpcStack,
    grpc_json: GrpcJson<GrpcStack>,
    grpc_web: GrpcWebAdapter<GrpcStack>,
    connect: ConnectService<GrpcStack>,
    websocket: WebSocketService<GrpcStack>,
    web: axum::Router,
    metrics: Arc<Metrics>,
    /// The API keys' rule for the plain HTTP routes (see [`GatewayBuilder::auth`]).
    guard: Option<web::Guard>,
    config: Config,
    /// Started by the listener; ends streams on the stack and WebSocket sessions.
    shutdown: Shutdown,
    /// Put the protocol in each request's extensions: only layers can read it, so only a
    /// stack with layers gets it.
    mark: bool,
}

/// Builds a [`Gateway`] around a native gRPC service (typically `tonic::service::Routes`,
/// or a `tonic::transport::Channel` to another server).
pub struct GatewayBuilder<S = Routes, L = Identity, C = Identity> {
    service: S,
    layers: L,
    shared: C,
    buffer: usize,
    methods: Option<SharedMethods>,
    config: Config,
    metrics: Option<Arc<Metrics>>,
    /// The upstreams `/healthz` reports (proxy mode).
    upstreams: Option<web::Upstreams>,
    /// Set by [`GatewayBuilder::auth`].
    guard: Option<web::Guard>,
}

impl Gateway {
    /// Starts a gateway in front of `service`: any tower service that speaks native gRPC and
    /// whose error is `Into<BoxError>` (a service error becomes a gRPC status: `UNAVAILABLE`
    /// for transport errors). The gateway adds its deadline and message size layers on top;
    /// add your own with [`GatewayBuilder::layer`], and they apply to every protocol.
    pub fn builder<S>(service: S) -> GatewayBuilder<S> {
        GatewayBuilder {
            service,
            layers: Identity::new(),
            shared: Identity::new(),
            buffer: DEFAULT_BUFFER,
            methods: None,
            config: Config::default(),
            metrics: None,
            upstreams: None,
            guard: None,
        }
    }

    /// The counters this gateway updates.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.adapters.metrics
    }

    /// The configuration this gateway was built with.
    pub fn config(&self) -> &Config {
        &self.adapters.config
    }

    /// Serves this gateway's `/metrics` on a listener of its own (`--metrics-listen`: an address
    /// only the monitoring network reaches, say), under the same API-key rule as `/metrics` on
    /// the gateway's port (see [`GatewayBuilder::auth`]); nothing else is served there. Runs
    /// until the process ends.
    pub fn serve_metrics(&self, listener: tokio::net::TcpListener) -> impl Future<Output = ()> + Send + 'static {
        let app = web::metrics_router(self.adapters.metrics.clone(), self.adapters.guard.clone());
        crate::metrics::serve_router(listener, app)
    }

    /// The drain switch the listener flips at shutdown.
    pub(crate) fn shutdown(&self) -> &Shutdown {
        &self.adapters.shutdown
    }

    /// The service to hand to a connection: this gateway with CORS outermost.
    pub fn into_service(self) -> GatewayService {
        GatewayService { cors: Arc::new(cors::layer(&self.adapters.config).layer(self.clone())), plain: self }
    }

    /// Serves one request. Generic over the body so that the gRPC paths convert it once,
    /// straight into the stack's body type; every other adapter takes an axum `Body`.
    async fn route<B>(self, mut req: Request<B>) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let protocol = classify(&req);
        let adapters = &*self.adapters;
        adapters.metrics.request(protocol.metrics_label());
        if adapters.mark {
            req.extensions_mut().insert(protocol);
        }
        match protocol {
            Protocol::Grpc | Protocol::GrpcJson | Protocol::GrpcWeb | Protocol::GrpcWebJson
                if req.method() != Method::POST =>
            {
                grpc::method_not_allowed(req.method()).map(Body::new)
            }
            Protocol::Grpc => {
                let Ok(resp) = adapters.grpc.clone().oneshot(req.map(tonic::body::Body::new)).await;
                resp.map(Body::new)
            }
            Protocol::GrpcJson => {
                let Ok(resp) = adapters.grpc_json.clone().oneshot(req.map(tonic::body::Body::new)).await;
                resp.map(Body::new)
            }
            Protocol::GrpcWeb | Protocol::GrpcWebJson => {
                let json = protocol == Protocol::GrpcWebJson;
                adapters.grpc_web.serve(req.map(tonic::body::Body::new), json).await.map(Body::new)
            }
            Protocol::WebSocket => {
                let Ok(resp) = adapters.websocket.clone().oneshot(req.map(Body::new)).await;
                resp
            }
            Protocol::ConnectUnary(_) | Protocol::ConnectStream(_) | Protocol::ConnectGet => {
                adapters.connect.serve(req.map(Body::new), protocol).await
            }
            Protocol::UnsupportedMediaType => unsupported_media_type(),
            Protocol::MethodNotAllowed => adapters.connect.method_not_allowed(req.method(), req.uri().path()),
            Protocol::Web => match adapters.web.clone().oneshot(req.map(Body::new)).await {
                Ok(resp) => resp,
                Err(never) => match never {},
            },
        }
    }
}

impl<S, L, C> GatewayBuilder<S, L, C> {
    /// Sets the configuration (default: [`Config::default`]).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Sets the method table the JSON protocols use (default: [`MethodTable::generated`]).
    pub fn methods(mut self, methods: MethodTable) -> Self {
        self.methods = Some(SharedMethods::new(methods));
        self
    }

    /// Sets a method table that can be replaced while the gateway runs.
    pub fn shared_methods(mut self, methods: SharedMethods) -> Self {
        self.methods = Some(methods);
        self
    }

    /// Serves every service `catalog` knows of: upstreams' services forwarded to them, local
    /// ones (this builder's service) with JSON codecs from their descriptors; reflection and
    /// health answered for all of them (see [`crate::proxy`]).
    pub fn catalog(self, catalog: Catalog) -> GatewayBuilder<ProxyRouter<S>, L, C> {
        let methods = catalog.shared_methods();
        let upstreams: web::Upstreams = {
            let catalog = catalog.clone();
            Arc::new(move || catalog.upstreams())
        };
        let mut builder =
            self.map_parts(|service, layers, shared| (ProxyRouter::new(service, catalog), layers, shared));
        builder.methods = Some(methods);
        builder.upstreams = Some(upstreams);
        builder
    }

    /// Serves every service of `file_descriptor_sets` (what tonic-prost-build writes for
    /// reflection, `FILE_DESCRIPTOR_SET`) over every protocol, in reflection and in health:
    /// the service handed to [`Gateway::builder`] implements them. A reflection or health
    /// service among its routes merges with portway's.
    pub fn descriptors(
        self,
        file_descriptor_sets: &[&[u8]],
    ) -> Result<GatewayBuilder<ProxyRouter<S>, L, C>, CatalogError> {
        let (health, _) = tonic_health::server::health_reporter();
        Ok(self.catalog(Catalog::local(file_descriptor_sets, health)?))
    }

    /// Shares counters with the caller (default: a fresh set).
    pub fn metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Adds a tower layer around the service, for every protocol, as
    /// `tonic::transport::Server::layer` does: the first layer added is the outermost.
    ///
    /// Any layer fits: its service need not be `Clone` (tower's `RateLimit`), and its error
    /// may be anything `Into<BoxError>` (`LoadShed`, `Timeout`), recovered into a gRPC status.
    /// A stack with layers is served through one `tower::buffer::Buffer` (a channel hop per
    /// call), which is what lets a layer that is not `Clone` be shared by every connection,
    /// and makes a rate limit one limit for the whole gateway. A layer whose service is
    /// `Clone` and keeps its state behind shared pointers can skip the buffer: see
    /// [`shared_layer`](Self::shared_layer).
    ///
    /// [`build`](Self::build) must then run inside a Tokio runtime (the buffer's worker is a task).
    pub fn layer<N>(self, layer: N) -> GatewayBuilder<S, Stack<N, L>, C> {
        self.map_parts(|service, layers, shared| (service, Stack::new(layer, layers), shared))
    }

    /// Adds a tower layer whose service is `Clone + Send + Sync` and whose clones share one
    /// state (counters, a key set, a rate limiter behind an `Arc`, as portway's
    /// [`ObserveLayer`](crate::ObserveLayer), [`AuthLayer`](crate::auth::AuthLayer)
    /// and [`RateLayer`](crate::rate::RateLayer) are). Such layers need no buffer: a
    /// stack with only shared layers is called directly, without the buffer's channel hop.
    ///
    /// Like [`layer`](Self::layer), it applies to every protocol, sees the gateway's protocol
    /// marker, and may fail with anything `Into<BoxError>`. Shared layers are outside every
    /// layer given to `layer` (a call meets them first), in the order they were added: the
    /// first is the outermost. A layer whose service is not `Clone` (tower's `RateLimit`), or
    /// whose clones would each keep their own state, belongs in `layer`, where one instance
    /// serves every call.
    pub fn shared_layer<N>(self, layer: N) -> GatewayBuilder<S, L, Stack<N, C>> {
        self.map_parts(|service, layers, shared| (service, layers, Stack::new(layer, shared)))
    }

    /// The same settings around what `f` makes of the service and the two layer stacks
    /// (their types change as layers are added).
    fn map_parts<S2, L2, C2>(self, f: impl FnOnce(S, L, C) -> (S2, L2, C2)) -> GatewayBuilder<S2, L2, C2> {
        let (service, layers, shared) = f(self.service, self.layers, self.shared);
        GatewayBuilder {
            service,
            layers,
            shared,
            buffer: self.buffer,
            methods: self.methods,
            config: self.config,
            metrics: self.metrics,
            upstreams: self.upstreams,
            guard: self.guard,
        }
    }

    /// Adds the API-key layer as [`shared_layer`](Self::shared_layer) does, and puts the plain HTTP routes
    /// (`/healthz`, `/metrics`, the demo's files; [`Gateway::serve_metrics`] too) under the
    /// same key file: what its `exempt` list does not name needs a key whose patterns do
    /// (`docs/auth.md`). A key file without `exempt` leaves them open.
    pub fn auth(self, auth: crate::auth::AuthLayer) -> GatewayBuilder<S, L, Stack<crate::auth::AuthLayer, C>> {
        let guard = auth.plain_guard();
        let mut builder = self.shared_layer(auth);
        builder.guard = Some(guard);
        builder
    }

    /// How many requests may wait at once for the buffer of a layered stack (see
    /// [`layer`](Self::layer)); more wait for room, in order. Default: 1,024.
    pub fn buffer_capacity(mut self, capacity: usize) -> Self {
        self.buffer = capacity;
        self
    }

    /// Builds the gateway.
    pub fn build(self) -> Gateway
    where
        L: StackLayers<S>,
        C: SharedLayers<L::Service>,
    {
        let mark = L::LAYERED || C::LAYERED;
        let shutdown = Shutdown::default();
        let methods = self.methods.unwrap_or_else(|| SharedMethods::new(MethodTable::generated()));
        methods.limit_json_depth(self.config.max_json_depth);
        let inner = self.layers.assemble(self.service, self.buffer);
        let stack: GrpcStack = self.shared.finish(inner, &self.config, &methods, &shutdown);
        let invoker = Invoker::new(stack.clone(), methods);
        let metrics = self.metrics.unwrap_or_default();
        let config = self.config;
        Gateway {
            adapters: Arc::new(Adapters {
                grpc_json: GrpcJson::new(invoker.clone(), config.max_message_bytes),
                grpc_web: GrpcWebAdapter::new(invoker.clone(), stack.clone(), config.max_message_bytes),
                connect: ConnectService::new(invoker.clone(), config.max_message_bytes),
                websocket: WebSocketService::new(invoker.clone(), &config, metrics.clone(), shutdown.clone()),
                web: web::service(
                    invoker,
                    metrics.clone(),
                    crate::web_assets::service(&config),
                    self.upstreams,
                    self.guard.clone(),
                ),
                grpc: stack,
                metrics,
                guard: self.guard,
                config,
                shutdown,
                mark,
            }),
        }
    }
}

impl<B> Service<Request<B>> for Gateway
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Every child is always ready (the stack is: its bottom recovers, and a layered
        // stack's buffer is polled by the call that uses it; the adapters; axum's router).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.route(req).await) })
    }
}

/// A [`Gateway`] with CORS outermost: what [`Gateway::into_service`] returns, and what a
/// connection serves.
///
/// A `POST` without an `Origin` header bypasses the CORS layer. Browsers send `Origin` on
/// every cross-origin request and on every `POST`, so such a request never comes from a
/// browser that needs CORS headers, and responses to `POST` are not cached, so none of them
/// needs `Vary: Origin` either. Native gRPC clients, `curl` and other servers thus pay nothing
/// for CORS (on the native gRPC path the layer's headers and their HPACK encoding were the
/// gateway's largest cost). Everything else (preflights, `GET`s, browser calls) goes through it.
#[derive(Clone)]
pub struct GatewayService {
    // hyper clones the service for every request; behind an `Arc`, the CORS settings (a few
    // vectors) are cloned only for the requests that go through them.
    cors: Arc<Cors<Gateway>>,
    plain: Gateway,
}

impl<B> Service<Request<B>> for GatewayService
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Either<<Cors<Gateway> as Service<Request<B>>>::Future, <Gateway as Service<Request<B>>>::Future>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Both are always ready: the gateway is, and CORS adds no readiness of its own.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if req.method() == Method::POST && !req.headers().contains_key(header::ORIGIN) {
            Either::Right(self.plain.call(req))
        } else {
            Either::Left((*self.cors).clone().call(req))
        }
    }
}

/// A `POST` to an RPC path with a content type no adapter speaks.
fn unsupported_media_type() -> Response<Body> {
    let mut resp = Response::new(Body::from(
        "unsupported content type: use application/grpc, application/grpc-web(-text), application/json, \
         application/proto or application/connect+json|proto\n",
    ));
    *resp.status_mut() = StatusCode::UNSUPPORTED_MEDIA_TYPE;
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    headers.insert(
        HeaderName::from_static("accept-post"),
        HeaderValue::from_static(
            "application/grpc, application/grpc-web, application/grpc-web-text, application/json, \
             application/proto, application/connect+json, application/connect+proto",
        ),
    );
    resp
}

#[cfg(test)]
mod tests;
