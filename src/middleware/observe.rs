//! [`ObserveLayer`]: call metrics and audit records, measured once on the service stack, so
//! that every protocol is counted the same way.
//!
//! Add it with [`crate::GatewayBuilder::shared_layer`] (or `layer`): there it sees the gateway's protocol marker
//! ([`Protocol`]) and every call of every protocol, native gRPC, gRPC-Web, Connect and each
//! WebSocket call alike. Each call shares one `CallState` between its response future, its
//! request body and its response body; the state records the call when the last of them is
//! gone, so a call is recorded exactly once, whether it ended, failed or was cancelled.

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use tonic::body::Body;
use tonic::transport::server::TcpConnectInfo;
use tower::{BoxError, Layer, Service};

use super::audit::{self, Audit};
use super::auth::Principal;
use super::call_state::CallState;
use super::observe_body::{Direction, ObservedBody};
use crate::metrics::Metrics;
use crate::metrics::calls::{CallTable, UNKNOWN_METHOD};
use crate::protocol::Protocol;

/// Records call metrics (and, with [`audit`](Self::audit), one audit record per call) for
/// every call through the stack. See the [module docs](self) and `docs/observability.md`.
#[derive(Debug, Clone)]
pub struct ObserveLayer {
    table: Arc<CallTable>,
    /// Known method paths, each its own label; any other is [`UNKNOWN_METHOD`].
    methods: Arc<HashSet<Arc<str>>>,
    unknown: Arc<str>,
    audit: bool,
}

impl ObserveLayer {
    /// Call metrics, registered with `metrics`, labelled by the method paths in `methods`
    /// (`/pkg.Service/Method`); calls to any other path are labelled `unknown`, so a client
    /// cannot create series at will.
    pub fn new<I, P>(metrics: &Metrics, methods: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: AsRef<str>,
    {
        let table = Arc::new(CallTable::default());
        metrics.register(|registry| registry.register_collector(Box::new(table.clone())));
        let methods = methods.into_iter().map(|p| Arc::from(p.as_ref())).collect();
        Self { table, methods: Arc::new(methods), unknown: Arc::from(UNKNOWN_METHOD), audit: false }
    }

    /// The method paths of every service this crate's protos define, and of gRPC
    /// reflection: the `method` label values the binary knows.
    pub fn known_methods() -> Vec<String> {
        let table = crate::transcode::MethodTable::generated();
        let reflection =
            ["v1", "v1alpha"].map(|v| format!("/grpc.reflection.{v}.ServerReflection/ServerReflectionInfo"));
        table.iter().map(|m| m.path().to_owned()).chain(reflection).collect()
    }

    /// Also logs one audit record per call (target `portway::audit`, level INFO): request id,
    /// protocol, method, peer, key id, duration and status code.
    pub fn audit(mut self, on: bool) -> Self {
        self.audit = on;
        self
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;
    fn layer(&self, inner: S) -> Observe<S> {
        Observe { inner, layer: self.clone() }
    }
}

/// The service of [`ObserveLayer`].
#[derive(Debug, Clone)]
pub struct Observe<S> {
    inner: S,
    layer: ObserveLayer,
}

/// The protocol label of a request on the stack: what the gateway marked it with, or
/// `internal` for a call the gateway made itself (`/healthz`).
fn protocol_label(req: &Request<Body>) -> &'static str {
    req.extensions().get::<Protocol>().map_or("internal", |p| p.metrics_label().name())
}

impl<S, RB> Service<Request<Body>> for Observe<S>
where
    S: Service<Request<Body>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
    RB: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    RB::Error: Into<BoxError>,
{
    type Response = Response<ObservedBody<RB>>;
    type Error = BoxError;
    type Future = ObserveFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let layer = &self.layer;
        let protocol = protocol_label(&req);
        let path = req.uri().path();
        let method = layer.methods.get(path).unwrap_or(&layer.unknown).clone();
        let audit = layer.audit.then(|| {
            let peer = peer(req.extensions());
            let key_id = req.extensions().get::<Principal>().map(|p| p.key_id.clone());
            Box::new(Audit::new(req.headers(), path, peer, key_id))
        });
        let request_id = audit.as_ref().and_then(|a| HeaderValue::from_str(&a.request_id).ok());
        let state = CallState::start(&layer.table, protocol, method, audit);
        let req = req.map(|body| Body::new(ObservedBody::new(body, state.clone(), Direction::Request)));
        ObserveFuture { inner: self.inner.call(req), state: Some(state), request_id }
    }
}

pin_project! {
    /// The response future of [`Observe`].
    pub struct ObserveFuture<F> {
        #[pin]
        inner: F,
        state: Option<Arc<CallState>>,
        request_id: Option<HeaderValue>,
    }
}

impl<F, RB, E> Future for ObserveFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Response<ObservedBody<RB>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let Some(state) = this.state.take() else {
            return Poll::Ready(Err("the call was polled after it completed".into()));
        };
        Poll::Ready(match result {
            Ok(mut resp) => {
                state.status_from(resp.headers());
                if let Some(who) = resp.extensions().get::<Principal>() {
                    state.identify(who);
                }
                if let Some(id) = this.request_id.take() {
                    resp.headers_mut().insert(audit::REQUEST_ID, id);
                }
                Ok(resp.map(|body| ObservedBody::new(body, state, Direction::Response)))
            }
            Err(e) => {
                let e = e.into();
                state.failed(crate::transcode::status::error_code(&*e));
                Err(e)
            }
        })
    }
}

/// The peer of a request, as the listener recorded it.
pub(crate) fn peer(extensions: &http::Extensions) -> Option<SocketAddr> {
    extensions.get::<TcpConnectInfo>().and_then(|i| i.remote_addr)
}
