//! The servers under test, each run as a child process (`portway-bench serve <kind>`) so that
//! its CPU time and memory can be read from `/proc/<pid>` in isolation.
//!
//! Every gRPC server (A and the tonic baselines) serves the very same `Routes`, built by
//! `portway::services::mount` with the interop service on: only what sits in front of the
//! service differs. The connect-rust and axum baselines cannot host a tonic service, so they
//! implement the same echo (`UnaryCall`: a payload of `response_size` zero bytes back) on their
//! own types.
//!
//! The baselines get the connection settings portway has by default (read from
//! `portway::Config::default()`): HTTP/2 keepalive pings, the concurrent-stream and header-list
//! limits, TCP_NODELAY and graceful shutdown, so that the gateway is all that differs. With
//! `--plain` they run with their libraries' defaults instead (no keepalive pings, no graceful
//! shutdown), which shows what those settings cost.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;
use clap::ValueEnum;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::net::TcpListener;

/// Which server a child process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// A: portway (`Gateway` + `portway::serve`), default configuration.
    Portway,
    /// B: the same routes on a plain `tonic::transport::Server`.
    Tonic,
    /// B: the same routes on `tonic::transport::Server` with `GrpcWebLayer` and HTTP/1.1 on.
    TonicWeb,
    /// B: the interop `TestService` on connect-rust (`connectrpc::Server`).
    ConnectRust,
    /// B: an axum handler decoding and encoding the same messages with serde_json.
    AxumJson,
    /// B: a tokio-tungstenite echo server.
    WsEcho,
    /// A: portway in proxy mode, in front of the server whose address is in
    /// [`UPSTREAM_ENV`] (a `Tonic` child), its services discovered by reflection.
    Proxy,
}

/// Where a [`Kind::Proxy`] server's upstream listens (`HOST:PORT`).
pub const UPSTREAM_ENV: &str = "PORTWAY_BENCH_UPSTREAM";

impl Kind {
    /// The name the report uses.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Portway => "portway",
            Kind::Tonic => "tonic",
            Kind::TonicWeb => "tonic-web",
            Kind::ConnectRust => "connect-rust",
            Kind::AxumJson => "axum+serde_json",
            Kind::WsEcho => "tokio-tungstenite",
            Kind::Proxy => "portway --upstream",
        }
    }
}

/// WebSocket read and write buffer sizes: portway's defaults, which the echo baseline (and
/// the harness's clients) use too, so that both servers hold the same buffers per socket.
pub fn ws_buffers() -> (usize, usize) {
    let ws = portway::Config::default().websocket;
    (ws.read_buffer_bytes, ws.write_buffer_bytes)
}

/// Runs a server until its stdin closes (the harness holds the other end), after printing
/// `PORT <port>` on stdout.
pub fn run(kind: Kind, cpu: Option<usize>, threads: usize, plain: bool) -> anyhow::Result<()> {
    if let Some(core) = cpu {
        // Threads created from here on (the runtime's workers) inherit the mask.
        core_affinity::set_for_current(core_affinity::CoreId { id: core });
    }
    crate::raise_nofile();
    // The harness closes our stdin to stop us; exiting from a plain thread needs no
    // cooperation from the server under test.
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        std::process::exit(0);
    });
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(threads.max(1)).enable_all().build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        println!("PORT {}", listener.local_addr()?.port());
        match kind {
            Kind::Portway => portway(listener).await,
            Kind::Tonic => tonic(listener, false, plain).await,
            Kind::TonicWeb => tonic(listener, true, plain).await,
            Kind::ConnectRust => connect_rust(listener, plain).await,
            Kind::AxumJson => axum_json(listener, plain).await,
            Kind::WsEcho => ws_echo(listener).await,
            Kind::Proxy => proxy(listener).await,
        }
    })
}

async fn routes() -> anyhow::Result<tonic::service::Routes> {
    let mut options = portway::services::ServiceOptions::default();
    options.interop = true;
    Ok(portway::services::mount(&options).await?.routes)
}

async fn portway(listener: TcpListener) -> anyhow::Result<()> {
    let mut config = portway::Config::default();
    // The idle-connection benchmarks open 10,000 connections (or sockets); everything else is
    // the default.
    config.http.max_connections = 1_000_000;
    config.websocket.max_sockets = 1_000_000;
    let builder = portway::Gateway::builder(routes().await?).config(config);
    // `PORTWAY_BENCH_OBSERVE`: with the binary's call metrics layer (docs/benchmarks.md,
    // "Call metrics"), to measure what it costs against the same build without it: `shared`
    // (or `1`) as the binary adds it (`shared_layer`, no buffer), `buffered` through
    // `layer` (the buffer's hop included), `edge` with API keys and rate limits as well.
    let observe = std::env::var("PORTWAY_BENCH_OBSERVE").ok();
    let metrics = std::sync::Arc::new(portway::metrics::Metrics::default());
    let layer = || portway::ObserveLayer::new(&metrics, portway::ObserveLayer::known_methods());
    let gateway = match observe.as_deref() {
        None => builder.build(),
        Some("buffered") => builder.metrics(metrics.clone()).layer(layer()).build(),
        Some("edge") => {
            let (auth, rate) = edge_layers()?;
            builder.metrics(metrics.clone()).shared_layer(layer()).shared_layer(auth).shared_layer(rate).build()
        }
        Some(_) => builder.metrics(metrics.clone()).shared_layer(layer()).build(),
    };
    portway::serve(listener, gateway, std::future::pending()).await?;
    Ok(())
}

/// API keys (one key, [`crate::calls::BENCH_KEY`], allowed every method) and rate limits
/// per address and per key that the benchmark never reaches, so that every call pays for
/// every check and none is refused.
fn edge_layers() -> anyhow::Result<(portway::auth::AuthLayer, portway::rate::RateLayer)> {
    use portway::rate::{Rate, RateOptions};
    let file = format!("[[key]]\nid = \"bench\"\nkey = \"{}\"\nmethods = [\"*\"]\n", crate::calls::BENCH_KEY);
    let keys = portway::auth::KeySet::parse(&file)?;
    let auth = portway::auth::AuthLayer::new(keys, portway::auth::AuthOptions::default());
    let high = std::num::NonZeroU32::new(1_000_000).context("a rate")?;
    let mut options = RateOptions::default();
    options.per_address = Some(Rate { per_second: high, burst: high });
    options.per_key = Some(Rate { per_second: high, burst: high });
    options.max_concurrent_per_key = Some(100_000);
    Ok((auth, portway::rate::RateLayer::new(options)))
}

/// portway in proxy mode with nothing of its own: every service (the upstream serves the
/// same routes as the other servers, state store and interop service included) is found by
/// the upstream's reflection at `$PORTWAY_BENCH_UPSTREAM` and forwarded there.
async fn proxy(listener: TcpListener) -> anyhow::Result<()> {
    use portway::proxy::{Catalog, Local, ProxyConfig, UpstreamConfig};
    let upstream = std::env::var(UPSTREAM_ENV).context("the upstream's address")?;
    let mut proxy = ProxyConfig::default();
    proxy.upstreams = vec![UpstreamConfig::new("tonic", vec![format!("http://{upstream}").parse()?])];
    let (health, _) = tonic_health::server::health_reporter();
    let catalog = Catalog::start(proxy, Local::none(), health).await?;
    let mut config = portway::Config::default();
    config.http.max_connections = 1_000_000;
    let local = tonic::service::Routes::builder().routes();
    let gateway = portway::Gateway::builder(local).config(config).catalog(catalog).build();
    portway::serve(listener, gateway, std::future::pending()).await?;
    Ok(())
}

/// portway's default connection settings, which the baselines copy.
fn http_config() -> portway::config::HttpConfig {
    portway::Config::default().http
}

async fn tonic(listener: TcpListener, web: bool, plain: bool) -> anyhow::Result<()> {
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let routes = routes().await?;
    let http = http_config();
    let mut server = tonic::transport::Server::builder();
    if !plain {
        server = server
            .http2_keepalive_interval(http.http2_keepalive_interval)
            .http2_keepalive_timeout(Some(http.http2_keepalive_timeout))
            .max_concurrent_streams(http.http2_max_concurrent_streams)
            .http2_max_header_list_size(http.max_header_list_bytes);
    }
    // A shutdown signal turns on tonic's graceful shutdown (a watch on every connection).
    let shutdown = std::future::pending::<()>();
    match (web, plain) {
        (false, true) => server.add_routes(routes).serve_with_incoming(incoming).await?,
        (false, false) => server.add_routes(routes).serve_with_incoming_shutdown(incoming, shutdown).await?,
        (true, true) => {
            server
                .accept_http1(true)
                .layer(tonic_web::GrpcWebLayer::new())
                .add_routes(routes)
                .serve_with_incoming(incoming)
                .await?
        }
        (true, false) => {
            server
                .accept_http1(true)
                .layer(tonic_web::GrpcWebLayer::new())
                .add_routes(routes)
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await?
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// connect-rust: the interop echo on the connectrpc crate.

use crate::connect_gen::grpc::testing::{
    Empty, Payload, SimpleRequest, SimpleResponse, StreamingInputCallRequest, StreamingInputCallResponse,
    StreamingOutputCallRequest, StreamingOutputCallResponse, TestService,
};
use connectrpc::{ConnectError, ErrorCode, RequestContext, Response, ServiceRequest, ServiceResult, ServiceStream};

/// `grpc.testing.TestService` on connect-rust, answering the calls the benchmark makes the way
/// portway's interop service does (a payload of `response_size` zero bytes, `response_status`
/// honoured). The calls the benchmark never makes answer `unimplemented`.
struct ConnectInterop;

fn connect_payload(size: i32) -> Result<Payload, ConnectError> {
    let size = usize::try_from(size)
        .map_err(|_| ConnectError::new(ErrorCode::InvalidArgument, format!("negative payload size {size}")))?;
    Ok(Payload { body: vec![0u8; size], ..Default::default() })
}

fn not_benchmarked() -> ConnectError {
    ConnectError::unimplemented("not part of the benchmark")
}

// The handlers name their concrete response types where the trait says `impl Encodable<_>`.
#[allow(refining_impl_trait)]
impl TestService for ConnectInterop {
    async fn empty_call(&self, _ctx: RequestContext, _request: ServiceRequest<'_, Empty>) -> ServiceResult<Empty> {
        Response::ok(Empty::default())
    }

    async fn unary_call(
        &self,
        _ctx: RequestContext,
        request: ServiceRequest<'_, SimpleRequest>,
    ) -> ServiceResult<SimpleResponse> {
        if let Some(status) = request.response_status.as_option()
            && status.code != 0
        {
            return Err(ConnectError::new(
                ErrorCode::from_grpc_code(status.code as u32).unwrap_or(ErrorCode::Unknown),
                status.message.to_string(),
            ));
        }
        let payload = connect_payload(request.response_size)?;
        Response::ok(SimpleResponse { payload: payload.into(), ..Default::default() })
    }

    async fn cacheable_unary_call(
        &self,
        _ctx: RequestContext,
        _request: ServiceRequest<'_, SimpleRequest>,
    ) -> ServiceResult<SimpleResponse> {
        Err(not_benchmarked())
    }

    async fn streaming_output_call(
        &self,
        _ctx: RequestContext,
        _request: ServiceRequest<'_, StreamingOutputCallRequest>,
    ) -> ServiceResult<ServiceStream<StreamingOutputCallResponse>> {
        Err(not_benchmarked())
    }

    async fn streaming_input_call(
        &self,
        _ctx: RequestContext,
        _requests: connectrpc::InboundStream<StreamingInputCallRequest>,
    ) -> ServiceResult<StreamingInputCallResponse> {
        Err(not_benchmarked())
    }

    async fn full_duplex_call(
        &self,
        _ctx: RequestContext,
        requests: connectrpc::InboundStream<StreamingOutputCallRequest>,
    ) -> ServiceResult<ServiceStream<StreamingOutputCallResponse>> {
        let out = requests.flat_map(|msg| {
            let replies: Vec<Result<StreamingOutputCallResponse, ConnectError>> = match msg {
                Err(e) => vec![Err(e)],
                Ok(msg) => msg
                    .view()
                    .response_parameters
                    .iter()
                    .map(|p| {
                        connect_payload(p.size).map(|payload| StreamingOutputCallResponse {
                            payload: payload.into(),
                            ..Default::default()
                        })
                    })
                    .collect(),
            };
            futures_util::stream::iter(replies)
        });
        Response::ok(Box::pin(out) as ServiceStream<StreamingOutputCallResponse>)
    }

    async fn half_duplex_call(
        &self,
        _ctx: RequestContext,
        _requests: connectrpc::InboundStream<StreamingOutputCallRequest>,
    ) -> ServiceResult<ServiceStream<StreamingOutputCallResponse>> {
        Err(not_benchmarked())
    }

    async fn unimplemented_call(
        &self,
        _ctx: RequestContext,
        _request: ServiceRequest<'_, Empty>,
    ) -> ServiceResult<Empty> {
        Err(not_benchmarked())
    }
}

async fn connect_rust(listener: TcpListener, plain: bool) -> anyhow::Result<()> {
    let router = connectrpc::Router::new().add_service(Arc::new(ConnectInterop));
    let server = connectrpc::Server::from_listener(listener);
    if plain {
        return server.serve(router).await.map_err(|e| anyhow::anyhow!(e));
    }
    let http = http_config();
    let mut server = server
        .with_http2_keepalive_timeout(http.http2_keepalive_timeout)
        .with_max_concurrent_streams(http.http2_max_concurrent_streams)
        .with_header_read_timeout(http.header_read_timeout);
    if let Some(interval) = http.http2_keepalive_interval {
        server = server.with_http2_keepalive_interval(interval);
    }
    server.serve_with_graceful_shutdown(router, std::future::pending()).await.map_err(|e| anyhow::anyhow!(e))
}

// ---------------------------------------------------------------------------------------------
// axum + serde_json: the same echo with no gRPC in between, on the same pbjson message types
// (and so the same JSON codec) that portway's Connect JSON path uses.

async fn axum_json(listener: TcpListener, plain: bool) -> anyhow::Result<()> {
    use axum::serve::ListenerExt as _;
    let app = axum::Router::new().route("/grpc.testing.TestService/UnaryCall", axum::routing::post(axum_unary));
    if plain {
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        return axum::serve(listener, app).await.context("axum serve");
    }
    // `axum::serve` has no HTTP/2 settings: serve the router the way `axum::serve` does (the
    // hyper-util auto builder, upgrades on), with portway's settings and graceful shutdown.
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    let http = http_config();
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(http.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(http.http2_max_concurrent_streams)
        .max_header_list_size(http.max_header_list_bytes)
        .keep_alive_interval(http.http2_keepalive_interval)
        .keep_alive_timeout(http.http2_keepalive_timeout);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (tcp, _) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        let svc = hyper_util::service::TowerToHyperService::new(app.clone());
        let conn = graceful.watch(builder.serve_connection_with_upgrades(TokioIo::new(tcp), svc).into_owned());
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}

async fn axum_unary(body: Bytes) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    use portway::pb::grpc::testing as pb;
    let req: pb::SimpleRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return (http::StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let Ok(size) = usize::try_from(req.response_size) else {
        return (http::StatusCode::BAD_REQUEST, "negative payload size").into_response();
    };
    let resp = pb::SimpleResponse {
        payload: Some(pb::Payload { r#type: pb::PayloadType::Compressable as i32, body: vec![0u8; size] }),
        ..Default::default()
    };
    match serde_json::to_vec(&resp) {
        Ok(json) => ([(http::header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(e) => (http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

// ---------------------------------------------------------------------------------------------
// A minimal WebSocket echo.

async fn ws_echo(listener: TcpListener) -> anyhow::Result<()> {
    use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
    let (read, write) = ws_buffers();
    let config = WebSocketConfig::default().read_buffer_size(read).write_buffer_size(write);
    loop {
        let (tcp, _) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        tokio::spawn(async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(tcp, Some(config)).await else { return };
            while let Some(Ok(msg)) = ws.next().await {
                if msg.is_text() || msg.is_binary() {
                    if ws.send(msg).await.is_err() {
                        break;
                    }
                } else if msg.is_close() {
                    break;
                }
            }
        });
    }
}
