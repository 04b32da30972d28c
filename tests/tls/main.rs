//! TLS on the one port, against real clients on real sockets: a tonic TLS client, rustls
//! clients offering one ALPN protocol each, curl (`--http1.1`, `--http2`), WebSocket over TLS
//! on HTTP/1.1 and on HTTP/2 (extended CONNECT), mutual TLS accepted and refused, the
//! handshake timeout, the per-address rate limit over TLS, and the real binary reloading its
//! certificate on SIGHUP under traffic and logging its self-signed fingerprint. (grpcio over TLS: tests/interop/py/grpcio_tls.py.)

// Tests may unwrap (`clippy::unwrap_used` is denied for the crate in Cargo.toml).
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

mod clients;
mod mtls;
mod pki;
mod rate;
mod reload;
mod websocket;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use common::http::eventually;
use common::http::guard;
use portway::config::TlsConfig;
use portway::pb::grpc::testing::SimpleRequest;
use portway::pb::grpc::testing::test_service_client::TestServiceClient;
use portway::services::ServiceOptions;
use portway::tls::Tls;
use portway::{Config, GatewayBuilder};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::oneshot;

use clients::{Alpn, connector, curl, tonic_channel};
use pki::Ca;

/// A gateway serving TLS on 127.0.0.1:<ephemeral>; stops when dropped.
pub struct TlsServer {
    pub addr: SocketAddr,
    pub metrics: Arc<portway::metrics::Metrics>,
    _stop: oneshot::Sender<()>,
}

/// The interop service behind a gateway built by `f`, served with `tls`.
pub async fn start_with(
    tls: TlsConfig,
    config: Config,
    f: impl FnOnce(GatewayBuilder) -> portway::Gateway,
) -> TlsServer {
    let mounted = common::mount_interop(ServiceOptions::default()).await;
    let gateway = f(portway::Gateway::builder(mounted.routes).config(config));
    let tls = Tls::load(&tls).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let metrics = gateway.metrics().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let stopped = async {
            let _ = stopped.await;
        };
        portway::Server::new(gateway).tls(tls).serve([listener], stopped).await.unwrap();
    });
    TlsServer { addr, metrics, _stop: stop }
}

/// The interop service served with a server certificate from `ca`.
pub async fn start(ca: &Ca, dir: &std::path::Path) -> TlsServer {
    let (cert, key) = ca.server().write(dir, "server");
    start_with(TlsConfig::files(cert, key), Config::default(), |b| b.build()).await
}

/// One unary call on `channel`, answering `size` bytes.
pub async fn unary(channel: tonic::transport::Channel, size: i32) -> Result<usize, tonic::Status> {
    let mut client = TestServiceClient::new(channel);
    let req = SimpleRequest { response_size: size, ..Default::default() };
    let resp = client.unary_call(req).await?.into_inner();
    Ok(resp.payload.map_or(0, |p| p.body.len()))
}

#[tokio::test]
async fn a_tonic_client_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let server = start(&ca, dir.path()).await;
    let channel = guard(tonic_channel(server.addr, &ca.pem, None)).await.unwrap();
    assert_eq!(guard(unary(channel.clone(), 1000)).await.unwrap(), 1000);
    // A server stream on the same connection.
    let mut client = TestServiceClient::new(channel);
    let req = portway::pb::grpc::testing::StreamingOutputCallRequest {
        response_parameters: (1..=3)
            .map(|n| portway::pb::grpc::testing::ResponseParameters { size: n * 10, ..Default::default() })
            .collect(),
        ..Default::default()
    };
    let mut stream = guard(client.streaming_output_call(req)).await.unwrap().into_inner();
    let mut sizes = Vec::new();
    while let Some(m) = guard(stream.message()).await.unwrap() {
        sizes.push(m.payload.map_or(0, |p| p.body.len()));
    }
    assert_eq!(sizes, [10, 20, 30]);
}

/// ALPN picks HTTP/2 when the client offers it and HTTP/1.1 for a client that speaks only
/// that; a client that offers nothing is served by what its first bytes say.
#[tokio::test]
async fn alpn_picks_h2_or_http_1_1() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let server = start(&ca, dir.path()).await;
    for (alpn, expected) in [
        (Alpn::Both, Some(&b"h2"[..])),
        (Alpn::H2, Some(&b"h2"[..])),
        (Alpn::Http11, Some(&b"http/1.1"[..])),
        (Alpn::None, None),
    ] {
        let tls = guard(clients::handshake(server.addr, &connector(&ca, alpn, None))).await.unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), expected, "{alpn:?}");
    }
    // Without ALPN the bytes decide: HTTP/1.1 here.
    let mut tls = guard(clients::handshake(server.addr, &connector(&ca, Alpn::None, None))).await.unwrap();
    tls.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n").await.unwrap();
    let mut out = String::new();
    guard(tls.read_to_string(&mut out)).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
}

/// curl, the client people use by hand: `--http1.1` negotiates HTTP/1.1, `--http2` HTTP/2,
/// and a Connect JSON call works over each.
#[tokio::test]
async fn curl_over_http1_and_http2() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let ca_file = ca.write(dir.path(), "ca.pem");
    let server = start(&ca, dir.path()).await;
    for (flag, version) in [("--http1.1", "1.1"), ("--http2", "2")] {
        let out =
            curl(server.addr, &ca_file, &[flag, "-o", "/dev/null", "-w", "%{http_version} %{http_code}"], "/healthz")
                .await;
        assert_eq!(out, format!("{version} 200"), "curl {flag}");
        let out = curl(
            server.addr,
            &ca_file,
            &[flag, "-H", "content-type: application/json", "-d", r#"{"responseSize":3}"#],
            "/grpc.testing.TestService/UnaryCall",
        )
        .await;
        let json: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        assert_eq!(json["payload"]["body"], "AAAA", "curl {flag}: {out}");
    }
}

/// Cleartext on a TLS-only port: an HTTP/1.1 request is told to use https://.
#[tokio::test]
async fn cleartext_on_a_tls_port_is_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let server = start(&ca, dir.path()).await;
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    let mut out = String::new();
    guard(tcp.read_to_string(&mut out)).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 400") && out.contains("use https://"), "{out}");
}

/// A handshake that stalls after its first byte is closed after `tls_handshake_timeout`,
/// and counted.
#[tokio::test]
async fn a_stalled_handshake_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let (cert, key) = ca.server().write(dir.path(), "server");
    let mut config = Config::default();
    config.http.tls_handshake_timeout = Duration::from_millis(200);
    let server = start_with(TlsConfig::files(cert, key), config, |b| b.build()).await;
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    // A handshake record header, then nothing.
    tcp.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    let mut out = Vec::new();
    let _ = guard(tcp.read_to_end(&mut out)).await;
    assert!(out.is_empty(), "a stalled handshake gets no answer");
    let metrics = server.metrics.clone();
    eventually("the timeout is counted", move || metrics.connection_events.timeouts("tls_handshake") == 1).await;
    // A complete handshake afterwards is unaffected.
    let channel = guard(tonic_channel(server.addr, &ca.pem, None)).await.unwrap();
    assert_eq!(guard(unary(channel, 1)).await.unwrap(), 1);
}

/// `allow_cleartext`: cleartext HTTP/1.1 and HTTP/2 beside TLS on the one port.
#[tokio::test]
async fn cleartext_beside_tls_when_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let (cert, key) = ca.server().write(dir.path(), "server");
    let mut tls = TlsConfig::files(cert, key);
    tls.allow_cleartext = true;
    let server = start_with(tls, Config::default(), |b| b.build()).await;
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await.unwrap();
    let mut out = String::new();
    guard(tcp.read_to_string(&mut out)).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    let cleartext = tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr)).unwrap();
    assert_eq!(guard(unary(guard(cleartext.connect()).await.unwrap(), 2)).await.unwrap(), 2);
    let channel = guard(tonic_channel(server.addr, &ca.pem, None)).await.unwrap();
    assert_eq!(guard(unary(channel, 4)).await.unwrap(), 4);
}

/// Files that cannot be used stop the binary at start with a sentence naming the file.
#[tokio::test]
async fn unusable_files_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let ca = Ca::new("test CA");
    let (_, key) = ca.server().write(dir.path(), "server");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_portway"))
        .args(["--listen", "127.0.0.1:0", "--storage", "memory", "--tls-cert"])
        .arg(&missing)
        .arg("--tls-key")
        .arg(&key)
        .output();
    let out = guard(out).await.unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("cannot read {}", missing.display())), "{stderr}");
    assert!(!stderr.contains("Os {"), "a sentence, not debug output: {stderr}");
}
