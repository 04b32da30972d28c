//! The multiplexed JSON-over-WebSocket protocol, `portway.v1.json`: all four RPC kinds for
//! browsers, many calls on one socket, flow control both ways, heartbeats. The protocol is
//! specified in `docs/websocket-protocol.md`.
//!
//! - [`WebSocketService`]: the adapter, a tower service over any [`GrpcService`] stack;
//! - `upgrade`: the handshake (HTTP/1.1 `Upgrade` and HTTP/2 extended `CONNECT`), the
//!   socket limit, subprotocol and origin checks, connection-level metadata; refusals are a
//!   `HandshakeRejection` (`rejection`);
//! - `session`: one socket's reader: frames, call table, heartbeats and idle timeout, over
//!   any `Sink`/`Stream` of WebSocket messages; `writer`: the one task that writes;
//! - `open` (call setup) and `call`: one call's task, which runs it on the service stack
//!   in-process under credit-based flow control;
//! - `guards`: admission by semaphores (sockets, calls) and the gauges that observe them;
//! - `frames`: the JSON frames, client frames parsed into a typed enum; `close_code`: the
//!   close codes.

mod call;
mod close_code;
mod drain;
pub(crate) mod frames;
mod guards;
mod open;
mod rejection;
mod session;
mod settings;
mod upgrade;
mod writer;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use http::{Request, Response};
use tokio::sync::Semaphore;

use self::settings::Settings;
use self::upgrade::Endpoint;
use crate::config::Config;
use crate::drain::Shutdown;
use crate::metrics::Metrics;
use crate::transcode::{GrpcService, Invoker};

/// The WebSocket adapter: answers upgrade requests and serves each socket's session, every
/// call going to `S` in-process.
pub(crate) struct WebSocketService<S> {
    endpoint: Arc<Endpoint<S>>,
}

impl<S> Clone for WebSocketService<S> {
    fn clone(&self) -> Self {
        Self { endpoint: self.endpoint.clone() }
    }
}

impl<S> WebSocketService<S> {
    /// The adapter for `invoker`, with the WebSocket settings of `config`, counting into
    /// `metrics`; its sockets close when `shutdown` drains.
    pub(crate) fn new(invoker: Invoker<S>, config: &Config, metrics: Arc<Metrics>, shutdown: Shutdown) -> Self {
        let settings = Settings::from_config(config);
        let sockets = Arc::new(Semaphore::new(settings.max_sockets.min(Semaphore::MAX_PERMITS)));
        Self { endpoint: Arc::new(Endpoint { invoker, settings, sockets, metrics, shutdown }) }
    }
}

impl<S: GrpcService> tower::Service<Request<Body>> for WebSocketService<S> {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let endpoint = self.endpoint.clone();
        Box::pin(async move { Ok(upgrade::upgrade(&endpoint, req).await) })
    }
}
