//! The routing service: CORS outermost (for the requests that need it), then [`classify`],
//! then one adapter per protocol, every one of which ends in the same service stack.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use futures_util::future::Either;
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use tower::util::BoxCloneSyncService;
use tower::{Layer as _, Service, ServiceExt as _};
use tower_http::cors::{AllowHeaders, AllowOrigin, Cors, CorsLayer, ExposeHeaders};

use crate::config::{AllowedOrigins, Config};
use crate::metrics::Metrics;
use crate::middleware::deadline::DeadlineLayer;
use crate::middleware::limit::MessageLimitLayer;
use crate::protocol::{Protocol, classify, connect, web, websocket};
use crate::transcode::{GrpcStack, MethodTable};

/// What every adapter shares: the stack, the method table, the config and the counters.
pub struct Shared {
    /// The one service stack every protocol ends in.
    pub stack: GrpcStack,
    /// Methods reachable over the JSON protocols.
    pub methods: MethodTable,
    /// The configuration the gateway was built with.
    pub config: Config,
    /// Process-wide counters.
    pub metrics: Arc<Metrics>,
}

/// The gateway: one tower service that serves every protocol. Build it with
/// [`Gateway::builder`], serve it with [`crate::serve`].
#[derive(Clone)]
pub struct Gateway {
    shared: Arc<Shared>,
    // Behind an `Arc` so that cloning the gateway for each request allocates nothing; only
    // gRPC-Web requests clone the service itself.
    grpc_web: Arc<tonic_web::GrpcWebService<GrpcStack>>,
    web: axum::Router,
}

/// Builds a [`Gateway`] around a native gRPC service (typically `tonic::service::Routes`).
pub struct GatewayBuilder {
    /// Wraps the caller's service in the gateway's layers and boxes it once: a stack boxed
    /// twice costs two allocations more on every call (one per clone, one per future).
    stack: Box<dyn FnOnce(&Config) -> GrpcStack + Send>,
    methods: Option<MethodTable>,
    config: Config,
    metrics: Option<Arc<Metrics>>,
}

impl Gateway {
    /// Starts a gateway in front of `service`: any tower service that speaks native gRPC,
    /// usually the `Routes` of the tonic services to mount. The gateway adds its deadline
    /// and message size layers on top; add your own layers (auth, limits) to `service`
    /// before passing it, and they apply to every protocol.
    pub fn builder<S>(service: S) -> GatewayBuilder
    where
        S: Service<Request<tonic::body::Body>, Response = Response<tonic::body::Body>, Error = Infallible>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        GatewayBuilder {
            stack: Box::new(move |config: &Config| {
                let limited = MessageLimitLayer::new(config.max_message_bytes).layer(service);
                BoxCloneSyncService::new(DeadlineLayer::new(config.max_call_timeout).layer(limited))
            }),
            methods: None,
            config: Config::default(),
            metrics: None,
        }
    }

    /// The counters this gateway updates.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.shared.metrics
    }

    /// The configuration this gateway was built with.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// The service to hand to a connection: this gateway with CORS outermost.
    pub fn into_service(self) -> GatewayService {
        GatewayService { cors: Arc::new(cors_layer(&self.shared.config).layer(self.clone())), plain: self }
    }

    /// Serves one request. Generic over the body so that the gRPC paths convert it once,
    /// straight into the stack's body type; every other adapter takes an axum `Body`.
    async fn route<B>(self, req: Request<B>) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let protocol = classify(&req);
        self.shared.metrics.request(protocol);
        match protocol {
            Protocol::Grpc => {
                let Ok(resp) = self.shared.stack.clone().oneshot(req.map(tonic::body::Body::new)).await;
                resp.map(Body::new)
            }
            Protocol::GrpcWeb => {
                let Ok(resp) = (*self.grpc_web).clone().oneshot(req.map(tonic::body::Body::new)).await;
                resp.map(Body::new)
            }
            // The adapters' futures are large; boxing them keeps this future (moved on every
            // request, whatever its protocol) small.
            Protocol::WebSocket => Box::pin(websocket::upgrade(self.shared, req.map(Body::new))).await,
            Protocol::ConnectUnary(encoding) => {
                Box::pin(connect::unary(self.shared, req.map(Body::new), encoding)).await
            }
            Protocol::ConnectStream(encoding) => {
                Box::pin(connect::stream(self.shared, req.map(Body::new), encoding)).await
            }
            Protocol::ConnectGet => Box::pin(connect::get(self.shared, req.map(Body::new))).await,
            Protocol::UnsupportedMediaType => {
                let mut resp = plain(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported content type: use application/grpc, application/grpc-web(-text), \
                     application/json, application/proto or application/connect+json|proto\n",
                );
                resp.headers_mut().insert(
                    HeaderName::from_static("accept-post"),
                    HeaderValue::from_static(
                        "application/grpc, application/grpc-web, application/grpc-web-text, application/json, \
                         application/proto, application/connect+json, application/connect+proto",
                    ),
                );
                resp
            }
            Protocol::Web => match self.web.oneshot(req.map(Body::new)).await {
                Ok(resp) => resp,
                Err(never) => match never {},
            },
        }
    }
}

impl GatewayBuilder {
    /// Sets the configuration (default: [`Config::default`]).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Sets the method table the JSON protocols use (default: [`MethodTable::generated`]).
    pub fn methods(mut self, methods: MethodTable) -> Self {
        self.methods = Some(methods);
        self
    }

    /// Shares counters with the caller (default: a fresh set).
    pub fn metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Builds the gateway.
    pub fn build(self) -> Gateway {
        let stack: GrpcStack = (self.stack)(&self.config);
        let shared = Arc::new(Shared {
            stack: stack.clone(),
            methods: self.methods.unwrap_or_else(MethodTable::generated),
            config: self.config,
            metrics: self.metrics.unwrap_or_default(),
        });
        Gateway {
            grpc_web: Arc::new(tonic_web::GrpcWebLayer::new().layer(stack)),
            web: web::router(shared.clone()),
            shared,
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
        // Every child is always ready (Routes, axum routers, the adapters).
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

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut resp = Response::new(Body::from(text));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

/// Response headers every browser client needs to read, whatever the protocol.
const EXPOSED: [&str; 5] =
    ["grpc-status", "grpc-message", "grpc-status-details-bin", "grpc-encoding", "connect-content-encoding"];

fn cors_layer(config: &Config) -> CorsLayer {
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
