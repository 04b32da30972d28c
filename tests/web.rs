//! Plain HTTP on the gateway's port: static files, `/healthz`, `/metrics`, and the
//! connection limits (`max_connections`, `http2_max_concurrent_streams`).

// Tests may unwrap (`clippy::unwrap_used` is denied for the crate in Cargo.toml).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use ::http::StatusCode;
use common::http::{self, Http, Reply, full, guard};
use portway::Config;
use portway::pb::grpc::testing::test_service_client::TestServiceClient;
use portway::pb::grpc::testing::{Empty, StreamingOutputCallRequest};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

async fn get(version: Http, url: &str) -> Reply {
    http::send(version, http::request("GET", url).body(full(Vec::new())).expect("request")).await
}

/// Sends `raw` on a fresh TCP connection and reads until the server closes it (or 64 KiB).
async fn raw_http1(addr: std::net::SocketAddr, raw: &str) -> String {
    guard(async {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.write_all(raw.as_bytes()).await.expect("write");
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
            if out.len() > 65_536 {
                break;
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    })
    .await
}

/// A web root with a few files, a sub-directory without an index, and a secret next to it.
fn web_root() -> (tempfile::TempDir, Config) {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("www");
    std::fs::create_dir_all(root.join("empty")).unwrap();
    std::fs::create_dir_all(root.join("docs")).unwrap();
    std::fs::write(root.join("index.html"), "<!doctype html><title>portway</title>").unwrap();
    std::fs::write(root.join("app.js"), "console.log('hi')").unwrap();
    std::fs::write(root.join("style.css"), "body{}").unwrap();
    std::fs::write(root.join("data.json"), "{}").unwrap();
    std::fs::write(root.join("logo.svg"), "<svg/>").unwrap();
    std::fs::write(root.join("mod.wasm"), [0, 0x61, 0x73, 0x6d]).unwrap();
    std::fs::write(root.join("docs").join("index.html"), "docs").unwrap();
    std::fs::write(root.join("empty").join(".hidden-marker"), "x").unwrap();
    std::fs::write(dir.path().join("secret.txt"), "TOP-SECRET").unwrap();
    let mut config = Config::default();
    config.web_root = Some(root);
    (dir, config)
}

#[tokio::test]
async fn static_files_with_content_types() {
    let (_dir, config) = web_root();
    let server = common::start_interop(config).await;
    for version in [Http::H1, Http::H2] {
        for (path, ct, body) in [
            ("/", "text/html", "<!doctype html><title>portway</title>"),
            ("/index.html", "text/html", "<!doctype html><title>portway</title>"),
            ("/app.js", "text/javascript", "console.log('hi')"),
            ("/style.css", "text/css", "body{}"),
            ("/data.json", "application/json", "{}"),
            ("/logo.svg", "image/svg+xml", "<svg/>"),
            ("/docs/", "text/html", "docs"),
        ] {
            let reply = get(version, &format!("{}{path}", server.url())).await;
            assert_eq!(reply.status, StatusCode::OK, "{path}: {reply:?}");
            let got = reply.header("content-type").unwrap_or_default();
            assert!(got.starts_with(ct), "{path}: content type {got:?}, want {ct}");
            assert_eq!(&reply.body[..], body.as_bytes(), "{path}");
        }
        let reply = get(version, &format!("{}/mod.wasm", server.url())).await;
        assert_eq!(reply.header("content-type"), Some("application/wasm"));
        let reply = get(version, &format!("{}/missing.html", server.url())).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn no_directory_listing() {
    let (_dir, config) = web_root();
    let server = common::start_interop(config).await;
    let reply = get(Http::H1, &format!("{}/empty/", server.url())).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{reply:?}");
    assert!(!String::from_utf8_lossy(&reply.body).contains(".hidden-marker"), "a directory was listed");
}

#[tokio::test]
async fn no_path_traversal() {
    let (_dir, config) = web_root();
    let server = common::start_interop(config).await;
    // Raw requests: an HTTP client library would normalise these paths before sending.
    for path in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/docs/../../secret.txt",
        "/docs/%2e%2e/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/%2e%2e%2fsecret.txt",
        "/..%5csecret.txt",
        "//secret.txt",
        "/../Cargo.toml",
        "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    ] {
        let resp =
            raw_http1(server.addr, &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")).await;
        let status_line = resp.lines().next().unwrap_or_default().to_string();
        assert!(!resp.contains("TOP-SECRET"), "{path} escaped the web root: {status_line}");
        assert!(!resp.contains("[package]") && !resp.contains("root:"), "{path} escaped the web root");
        assert!(!status_line.contains(" 200 ") && !status_line.is_empty(), "{path}: {status_line}");
    }
}

#[tokio::test]
async fn without_a_web_root_there_are_no_files() {
    let server = common::start_interop(Config::default()).await;
    assert_eq!(get(Http::H1, &format!("{}/", server.url())).await.status, StatusCode::NOT_FOUND);
    assert_eq!(get(Http::H1, &format!("{}/Cargo.toml", server.url())).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn healthz_and_metrics() {
    let server = common::start_interop(Config::default()).await;
    for version in [Http::H1, Http::H2] {
        let reply = get(version, &format!("{}/healthz", server.url())).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(&reply.body[..], b"SERVING\n");
        assert_eq!(reply.header("cache-control"), Some("no-store"));
    }
    // One call per protocol family, to see each counted.
    let mut client = TestServiceClient::new(server.channel().await);
    guard(client.empty_call(Empty {})).await.expect("gRPC");
    http::grpc_web_call(Http::H1, false, &format!("{}/grpc.testing.TestService/EmptyCall", server.url()), &[&[]], &[])
        .await;
    let connect = http::request("POST", &format!("{}/grpc.testing.TestService/EmptyCall", server.url()))
        .header("content-type", "application/json")
        .body(full("{}"))
        .unwrap();
    assert_eq!(http::send(Http::H1, connect).await.status, StatusCode::OK);
    let unsupported = http::request("POST", &format!("{}/grpc.testing.TestService/EmptyCall", server.url()))
        .header("content-type", "text/plain")
        .body(full("{}"))
        .unwrap();
    assert_eq!(http::send(Http::H1, unsupported).await.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let reply = get(Http::H1, &format!("{}/metrics", server.url())).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.header("content-type").unwrap().starts_with("application/openmetrics-text"));
    let text = String::from_utf8(reply.body.to_vec()).unwrap();
    for line in [
        "# TYPE portway_connections_open gauge",
        "# TYPE portway_requests counter",
        "portway_requests_total{protocol=\"web\"} 3",
        "portway_requests_total{protocol=\"grpc\"} 1",
        "portway_requests_total{protocol=\"grpc_web\"} 1",
        "portway_requests_total{protocol=\"connect\"} 1",
        "portway_requests_total{protocol=\"unsupported\"} 1",
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
}

#[tokio::test]
async fn healthz_reports_not_serving() {
    let mounted = portway::services::mount(&Default::default()).await.expect("mount");
    mounted.health.set_service_status("", tonic_health::ServingStatus::NotServing).await;
    let server = common::start_routes(mounted.routes, Config::default()).await;
    let reply = get(Http::H1, &format!("{}/healthz", server.url())).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(&reply.body[..], b"NOT_SERVING\n");
}

#[tokio::test]
async fn max_connections_is_enforced() {
    let mut config = Config::default();
    config.http.max_connections = 1;
    // Without the reserve (which would reclaim the first connection once it is quiet).
    config.http.reclaim_after = None;
    let server = common::start_interop(config).await;

    // The first connection is served and kept open.
    let mut first = guard(TcpStream::connect(server.addr)).await.expect("connect");
    guard(first.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")).await.unwrap();
    let mut buf = [0u8; 1024];
    let n = guard(first.read(&mut buf)).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"), "first connection served");

    // A second one is closed without an answer.
    let resp = raw_http1(server.addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(resp, "", "a connection over the limit got an answer");
    assert!(server.metrics.render().contains("portway_connections_refused_total 1"));

    // Once the first closes, connections are accepted again.
    drop(first);
    guard(async {
        while server.metrics.connections_open() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let resp = raw_http1(server.addr, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
}

/// Reads the server's first SETTINGS frame on a fresh HTTP/2 connection and returns
/// SETTINGS_MAX_CONCURRENT_STREAMS, if announced (hand-framed: the test is about the frame).
async fn announced_max_streams(addr: std::net::SocketAddr) -> Option<u32> {
    guard(async {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.unwrap();
        tcp.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap(); // empty SETTINGS
        loop {
            let mut head = [0u8; 9];
            tcp.read_exact(&mut head).await.expect("a frame header");
            let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let mut payload = vec![0u8; len];
            tcp.read_exact(&mut payload).await.expect("a frame payload");
            if head[3] == 4 && head[4] & 1 == 0 {
                return payload
                    .chunks(6)
                    .find(|p| u16::from_be_bytes([p[0], p[1]]) == 3)
                    .map(|p| u32::from_be_bytes([p[2], p[3], p[4], p[5]]));
            }
        }
    })
    .await
}

#[tokio::test]
async fn http2_max_concurrent_streams_is_enforced() {
    let mut config = Config::default();
    config.http.http2_max_concurrent_streams = 1;
    let server = common::start_interop(config).await;
    assert_eq!(announced_max_streams(server.addr).await, Some(1));

    // One connection (a tonic channel); a duplex call holds its only stream open.
    let mut client = TestServiceClient::new(server.channel().await);
    let (tx, held) = hold_a_stream(&client).await;
    // While it is open, a second call on the same connection must wait for the stream.
    let mut second = Box::pin(client.empty_call(Empty {}));
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut second).await.is_err(),
        "a second stream ran concurrently despite the limit of 1"
    );
    drop(tx); // ends the duplex call, freeing the stream
    guard(held).await.expect("duplex ends");
    guard(second).await.expect("the waiting call runs once the stream is free");
}

/// Opens a duplex call and waits for its first response (so the connection's settings are
/// known to the client); the call stays open until the returned sender is dropped.
async fn hold_a_stream(
    client: &TestServiceClient<tonic::transport::Channel>,
) -> (tokio::sync::mpsc::Sender<StreamingOutputCallRequest>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = tokio::sync::mpsc::channel::<StreamingOutputCallRequest>(1);
    let (open_tx, open_rx) = tokio::sync::oneshot::channel();
    let mut duplex = client.clone();
    let held = tokio::spawn(async move {
        let resp = duplex.full_duplex_call(tokio_stream::wrappers::ReceiverStream::new(rx)).await;
        let mut stream = resp.expect("duplex starts").into_inner();
        stream.message().await.expect("message").expect("the first response");
        let _ = open_tx.send(());
        while stream.message().await.expect("message").is_some() {}
    });
    let ping = StreamingOutputCallRequest {
        response_parameters: vec![portway::pb::grpc::testing::ResponseParameters { size: 1, ..Default::default() }],
        ..Default::default()
    };
    tx.send(ping).await.expect("send");
    guard(open_rx).await.expect("the duplex call is open");
    (tx, held)
}

#[tokio::test]
async fn default_stream_limit_allows_concurrency() {
    // The control for the test above: with the default limit, the same second call runs
    // while the first is open.
    let server = common::start_interop(Config::default()).await;
    assert_eq!(announced_max_streams(server.addr).await, Some(256));
    let mut client = TestServiceClient::new(server.channel().await);
    let (tx, held) = hold_a_stream(&client).await;
    guard(client.empty_call(Empty {})).await.expect("runs concurrently");
    drop(tx);
    guard(held).await.expect("duplex ends");
}

#[tokio::test]
async fn http2_header_list_limit_is_enforced() {
    let mut config = Config::default();
    config.http.max_header_list_bytes = 2048;
    let server = common::start_interop(config).await;
    let url = format!("{}/healthz", server.url());
    let small = http::request("GET", &url).header("x-small", "a".repeat(100)).body(full(Vec::new())).unwrap();
    assert_eq!(http::send(Http::H2, small).await.status, StatusCode::OK);
    let big = http::request("GET", &url).header("x-big", "a".repeat(4096)).body(full(Vec::new())).unwrap();
    assert_eq!(http::send(Http::H2, big).await.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
}

#[tokio::test]
async fn http1_header_read_timeout_closes_slow_clients() {
    let mut config = Config::default();
    config.http.header_read_timeout = Duration::from_millis(200);
    let server = common::start_interop(config).await;
    // Half a request line, then nothing: the server must give up on its own.
    let resp = raw_http1(server.addr, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow").await;
    assert!(resp.is_empty() || resp.starts_with("HTTP/1.1 408"), "{resp}");
}
