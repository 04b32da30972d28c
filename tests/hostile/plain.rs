//! Plain HTTP/1.1 (the demo page, `/healthz`, `/metrics`, the WebSocket handshake): raw
//! bytes written as they are, malformed request lines and headers among them. After the
//! response the next request on the same connection must get `/healthz`, unless the
//! response announced `connection: close`, when the connection must end (`+close`).

use std::net::SocketAddr;

use tokio::io::AsyncWriteExt as _;

use super::common::h1raw;
use super::{Row, bounded, common, config, judge};

const NEXT: &[u8] = b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n";

/// One request's bytes: its start line and headers (`host` added), no body.
fn get(line: &str, headers: &[&str]) -> Vec<u8> {
    let mut out = format!("{line}\r\nhost: localhost\r\n");
    for h in headers {
        out.push_str(h);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out.into_bytes()
}

async fn run(addr: SocketAddr, bytes: &[u8]) -> String {
    bounded(async {
        let (mut reader, mut write) = h1raw::connect(addr).await;
        if write.write_all(bytes).await.is_err() {
            return "write failed".into();
        }
        let resp = match reader.response().await {
            Ok(r) => r,
            Err(e) => {
                return if reader.closed().await {
                    "closed without an answer".into()
                } else {
                    format!("no response ({e})")
                };
            }
        };
        let got = format!("http {}", resp.status);
        if resp.closes() {
            return if reader.closed().await {
                format!("{got} +close")
            } else {
                format!("{got} +close announced, still open")
            };
        }
        if write.write_all(NEXT).await.is_err() {
            return format!("{got} +the next request could not be written");
        }
        match reader.response().await {
            Ok(r) if r.status == 200 => got,
            Ok(r) => format!("{got} +the next request got {}", r.status),
            // Closed without announcing it (right for HTTP/1.0 only).
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => format!("{got} +closed"),
            Err(e) => format!("{got} +the next request failed ({e})"),
        }
    })
    .await
}

fn rows() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let ws_head = |extra: &[&str]| {
        let mut h = vec!["upgrade: websocket", "connection: upgrade", "sec-websocket-protocol: portway.v1.json"];
        h.extend_from_slice(extra);
        h.into_iter().map(str::to_string).collect::<Vec<_>>()
    };
    let ws = |extra: &[&str]| get("GET /ws HTTP/1.1", &ws_head(extra).iter().map(String::as_str).collect::<Vec<_>>());
    let big_header = format!("x-filler: {}", "a".repeat(20 * 1024));
    let many_headers: Vec<String> = (0..200).map(|i| format!("x-h{i}: v")).collect();
    let many: Vec<&str> = many_headers.iter().map(String::as_str).collect();
    vec![
        ("healthz", get("GET /healthz HTTP/1.1", &[]), "http 200"),
        ("metrics", get("GET /metrics HTTP/1.1", &[]), "http 200"),
        ("demo-page", get("GET / HTTP/1.1", &[]), "http 200"),
        ("no-such-page", get("GET /no/such/page HTTP/1.1", &[]), "http 404"),
        ("dot-dot-path", get("GET /../../etc/passwd HTTP/1.1", &[]), "http 404"),
        ("encoded-dot-dot-path", get("GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1", &[]), "http 404"),
        ("vendor-dot-dot-path", get("GET /vendor/../../Cargo.toml HTTP/1.1", &[]), "http 404"),
        ("absolute-form-uri", get("GET http://elsewhere.example/healthz HTTP/1.1", &[]), "http 200"),
        ("asterisk-form-get", get("GET * HTTP/1.1", &[]), "http 404"),
        ("post-to-healthz", get("POST /healthz HTTP/1.1", &["content-length: 0"]), "http 405"),
        // HTTP/1.0 closes after the response unless asked to keep the connection.
        ("http-1.0", b"GET /healthz HTTP/1.0\r\n\r\n".to_vec(), "http 200 +closed"),
        ("not-http", b"HELLO THERE\r\n\r\n".to_vec(), "http 400 +close"),
        ("http-2.0-on-an-http-1-connection", get("GET /healthz HTTP/2.0", &[]), "http 400 +close"),
        ("header-without-colon", get("GET /healthz HTTP/1.1", &["no colon here"]), "http 400 +close"),
        ("header-with-a-nul", get("GET /healthz HTTP/1.1", &["x-bad: a\0b"]), "http 400 +close"),
        ("obsolete-line-folding", get("GET /healthz HTTP/1.1", &["x-fold: a", " continued"]), "http 400 +close"),
        (
            "two-content-lengths",
            get("POST /healthz HTTP/1.1", &["content-length: 1", "content-length: 2"]),
            "http 400 +close",
        ),
        (
            "content-length-and-chunked",
            // RFC 9112, 6.3: chunked wins, and the connection closes after the answer.
            get("POST /healthz HTTP/1.1", &["content-length: 5", "transfer-encoding: chunked"]),
            "http 405 +close",
        ),
        ("unknown-transfer-encoding", get("POST /healthz HTTP/1.1", &["transfer-encoding: gzip"]), "http 400 +close"),
        ("header-over-the-limit", get("GET /healthz HTTP/1.1", &[&big_header]), "http 431 +close"),
        ("two-hundred-headers", get("GET /healthz HTTP/1.1", &many), "http 431 +close"),
        ("uri-over-the-limit", get(&format!("GET /{} HTTP/1.1", "a".repeat(20 * 1024)), &[]), "http 431 +close"),
        ("websocket-without-a-key", ws(&["sec-websocket-version: 13"]), "http 400"),
        (
            "websocket-version-8",
            ws(&["sec-websocket-version: 8", "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ=="]),
            "http 426",
        ),
        (
            "websocket-post",
            get("POST /ws HTTP/1.1", &["upgrade: websocket", "connection: upgrade", "content-length: 0"]),
            "http 405",
        ),
    ]
}

#[tokio::test]
async fn plain_http() {
    let mut config = config();
    config.demo = true;
    let server = common::start_interop(config).await;
    let mut results = Vec::new();
    for (name, bytes, want) in rows() {
        results.push(Row { name: format!("http/{name}"), want: want.into(), got: run(server.addr, &bytes).await });
    }
    judge("http", &results);
}
