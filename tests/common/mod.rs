//! Shared test harness: a real gateway on a real socket (port 0), real clients.
#![allow(dead_code)]

pub mod child;
pub mod h1raw;
pub mod h2raw;
pub mod http;
pub mod logged;
pub mod protocols;
pub mod scripted;

use std::net::SocketAddr;

use portway::Config;
use portway::services::ServiceOptions;
use portway::services::state::StateOptions;
use tokio::sync::oneshot;
use tonic::service::Routes;

/// A gateway serving on 127.0.0.1:<ephemeral>; shuts down when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    pub metrics: std::sync::Arc<portway::metrics::Metrics>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl TestServer {
    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A tonic channel (HTTP/2 prior knowledge) to the gateway.
    pub async fn channel(&self) -> tonic::transport::Channel {
        tonic::transport::Endpoint::from_shared(self.url()).expect("valid url").connect().await.expect("connect")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Starts the gateway with the interop service mounted and `config`.
pub async fn start_interop(config: Config) -> TestServer {
    let mut options = ServiceOptions::default();
    options.max_message_bytes = config.max_message_bytes;
    start_routes(mount_interop(options).await.routes, config).await
}

/// The default services and the interop service, mounted with `options` (the state store in
/// memory), for a test that builds its own gateway around them.
pub async fn mount_interop(mut options: ServiceOptions) -> portway::services::Mounted {
    options.interop = true;
    options.state = StateOptions::memory();
    portway::services::mount(&options).await.expect("mount")
}

/// Starts the gateway with the default services (the state store among them) mounted,
/// the store opened with `state` (e.g. `StateOptions::memory()` or
/// `StateOptions::durable(tempdir)`). Returns the server and the store's handle.
pub async fn start_state(state: StateOptions, config: Config) -> (TestServer, portway::services::state::Store) {
    let mut options = ServiceOptions::default();
    options.max_message_bytes = config.max_message_bytes;
    options.state = state;
    let mounted = portway::services::mount(&options).await.expect("mount");
    let store = mounted.state.clone();
    (start_routes(mounted.routes, config).await, store)
}

/// Starts the gateway in front of any `Routes`.
pub async fn start_routes(routes: Routes, config: Config) -> TestServer {
    start_gateway(portway::Gateway::builder(routes).config(config)).await
}

/// Starts the gateway with [`scripted::Scripted`] as `grpc.testing.TestService`, next to
/// the standard services (health, reflection); returns the receiver of its drop reports.
pub async fn start_scripted(config: Config) -> (TestServer, tokio::sync::mpsc::UnboundedReceiver<&'static str>) {
    let mounted = portway::services::mount(&ServiceOptions::default()).await.expect("mount");
    let (service, dropped) = scripted::Scripted::service();
    (start_routes(mounted.routes.add_service(service), config).await, dropped)
}

/// Starts a gateway from a builder (for a custom method table, say).
pub async fn start_gateway(builder: portway::GatewayBuilder) -> TestServer {
    serve_gateway(builder.build()).await
}

/// Serves a built gateway (one with layers, or in front of another service).
pub async fn serve_gateway(gateway: portway::Gateway) -> TestServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let metrics = gateway.metrics().clone();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        portway::serve(listener, gateway, async {
            let _ = rx.await;
        })
        .await
        .expect("serve");
    });
    TestServer { addr, metrics, shutdown: Some(tx) }
}
