//! API keys on the plain HTTP routes (`/healthz`, `/metrics`, the demo's files, and the
//! `--metrics-listen` listener): open without an `exempt` list, under the key file's rules
//! with one, over HTTP/1.1 (raw bytes, as curl sends them) and HTTP/2, and never reachable
//! around the rules by a path that merely looks different.

// Tests may unwrap (`clippy::unwrap_used` is denied for the crate in Cargo.toml).
#![allow(clippy::unwrap_used)]

mod common;

use common::h1raw::{self, RawResponse};
use common::h2raw::H2;
use common::http::{self as web, Http, full, guard, request};
use common::logged::Logged;
use common::{TestServer, serve_gateway};
use portway::auth::{AuthLayer, AuthOptions, KeySet};
use portway::services::ServiceOptions;
use tokio::io::AsyncWriteExt as _;
use tonic_health::ServingStatus;

const ADMIN: &str = "admin-key-0123456789";
const SCRAPER: &str = "scraper-key-0123456789";
const PROBER: &str = "prober-key-0123456789";
const RPC: &str = "rpc-key-0123456789";

/// The keys every test uses, after the test's own `exempt` line (or none).
fn keys(exempt: Option<&str>) -> String {
    let exempt = exempt.map(|list| format!("exempt = {list}\n")).unwrap_or_default();
    format!(
        r#"{exempt}
        [[key]]
        id = "admin"
        key = "{ADMIN}"
        methods = ["*"]

        [[key]]
        id = "scraper"
        key = "{SCRAPER}"
        methods = ["/metrics"]

        [[key]]
        id = "prober"
        key = "{PROBER}"
        methods = ["/healthz"]

        [[key]]
        id = "rpc"
        key = "{RPC}"
        methods = ["grpc.testing.*", "grpc.health.v1.Health/*"]
        "#
    )
}

/// A gateway with `keys` on its stack and its plain routes; also the health reporter.
async fn gateway(keys: &str) -> (TestServer, tonic_health::server::HealthReporter) {
    let mounted = common::mount_interop(ServiceOptions::default()).await;
    let layer = AuthLayer::new(KeySet::parse(keys).unwrap(), AuthOptions::default());
    let mut config = portway::Config::default();
    config.demo = true;
    let server = serve_gateway(portway::Gateway::builder(mounted.routes).config(config).auth(layer).build()).await;
    (server, mounted.health)
}

/// One request written as raw bytes on a new connection, its response read off the wire.
async fn raw(addr: std::net::SocketAddr, head: &str) -> RawResponse {
    let (mut reader, mut write) = h1raw::connect(addr).await;
    guard(write.write_all(head.as_bytes())).await.unwrap();
    guard(reader.response()).await.unwrap()
}

/// What a server sends to `head` (with `connection: close`) until it closes, status line included.
async fn raw_all(addr: std::net::SocketAddr, head: &str) -> String {
    use tokio::io::AsyncReadExt as _;
    let mut tcp = guard(tokio::net::TcpStream::connect(addr)).await.unwrap();
    guard(tcp.write_all(head.as_bytes())).await.unwrap();
    let mut out = Vec::new();
    guard(tcp.read_to_end(&mut out)).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// `GET path` over HTTP/1.1 (raw) or HTTP/2 (hyper) with `headers`: status, `www-authenticate`
/// and body.
async fn get(server: &TestServer, http: Http, path: &str, headers: &[(&str, &str)]) -> (u16, Option<String>, String) {
    match http {
        Http::H1 => {
            let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
            let resp = raw(server.addr, &format!("GET {path} HTTP/1.1\r\nhost: localhost\r\n{extra}\r\n")).await;
            let challenge = resp.header("www-authenticate").map(str::to_owned);
            (resp.status, challenge, String::from_utf8_lossy(&resp.body).into_owned())
        }
        Http::H2 => {
            let mut req = request("GET", &format!("{}{path}", server.url()));
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            let reply = web::send(Http::H2, req.body(full("")).unwrap()).await;
            let challenge = reply.header("www-authenticate").map(str::to_owned);
            (reply.status.as_u16(), challenge, String::from_utf8_lossy(&reply.body).into_owned())
        }
    }
}

/// Request headers: (name, value) pairs.
type Headers<'a> = &'a [(&'a str, &'a str)];

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

#[tokio::test]
async fn without_an_exempt_list_the_plain_routes_stay_open() {
    let (server, _) = gateway(&keys(None)).await;
    for http in [Http::H1, Http::H2] {
        let (status, _, body) = get(&server, http, "/healthz", &[]).await;
        assert_eq!((status, body.as_str()), (200, "SERVING\n"), "{http:?}");
        let (status, _, body) = get(&server, http, "/metrics", &[]).await;
        assert!(status == 200 && body.contains("portway_"), "{http:?}: {status} {body}");
        let (status, _, body) = get(&server, http, "/", &[]).await;
        assert!(status == 200 && body.contains("<html"), "{http:?}: {status}");
    }
    // The calls still need keys.
    let call = request("POST", &format!("{}/grpc.testing.TestService/EmptyCall", server.url()))
        .header("content-type", "application/json")
        .body(full("{}"))
        .unwrap();
    assert_eq!(web::send(Http::H1, call).await.status, 401);
}

#[tokio::test]
async fn with_an_exempt_list_the_routes_not_on_it_need_a_key() {
    let (server, _) = gateway(&keys(Some(r#"["grpc.health.v1.Health/*", "/healthz"]"#))).await;
    let (admin, scraper, rpc) = (bearer(ADMIN), bearer(SCRAPER), bearer(RPC));
    let cookie = format!("portway-api-key={SCRAPER}");
    #[rustfmt::skip]
    let cases: &[(&str, Headers, u16, &str)] = &[
        ("/metrics", &[], 401, "needs an API key"),
        ("/metrics", &[("authorization", "Bearer not-a-key")], 401, "not valid"),
        ("/metrics", &[("authorization", &rpc)], 403, "may not read /metrics"),
        ("/metrics", &[("authorization", &scraper)], 200, "portway_"),
        ("/metrics", &[("x-api-key", SCRAPER)], 200, "portway_"),
        ("/metrics", &[("authorization", &admin)], 200, "portway_"),
        // A cookie is honoured on WebSocket upgrades from trusted origins only.
        ("/metrics", &[("cookie", &cookie)], 401, "needs an API key"),
        ("/metrics?format=text", &[], 401, "needs an API key"),
        ("/", &[], 401, "needs an API key"),
        ("/", &[("authorization", &scraper)], 403, "may not read the demo's files"),
        ("/", &[("authorization", &admin)], 200, "<html"),
        ("/vendor/no-such-file.js", &[], 401, "needs an API key"),
        ("/vendor/no-such-file.js", &[("authorization", &admin)], 404, "not found"),
        ("/healthz", &[], 200, "SERVING"),
    ];
    for http in [Http::H1, Http::H2] {
        for (path, headers, status, needle) in cases {
            let (got, challenge, body) = get(&server, http, path, headers).await;
            assert!(got == *status && body.contains(needle), "{http:?} {path} {headers:?}: {got} {body:?}");
            assert_eq!(
                challenge.is_some_and(|c| c.starts_with("Bearer")),
                *status == 401,
                "{http:?} {path}: a 401 (and only a 401) challenges for a bearer token"
            );
        }
    }
    let head = raw_all(server.addr, "HEAD /metrics HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 401") && !leaks(head.as_bytes()), "{head}");
}

#[tokio::test]
async fn healthz_behind_a_key_reports_the_real_health() {
    let (server, health) = gateway(&keys(Some("[]"))).await;
    for http in [Http::H1, Http::H2] {
        let (status, _, body) = get(&server, http, "/healthz", &[]).await;
        assert_eq!(status, 401, "{http:?}: refused as a request, not reported unhealthy: {body}");
        let (status, _, _) = get(&server, http, "/healthz", &[("x-api-key", RPC)]).await;
        assert_eq!(status, 403, "{http:?}: the health service's pattern does not cover the route");
        let (status, _, body) = get(&server, http, "/healthz", &[("x-api-key", PROBER)]).await;
        assert_eq!((status, body.as_str()), (200, "SERVING\n"), "{http:?}");
    }
    health.set_service_status("", ServingStatus::NotServing).await;
    let (status, _, body) = get(&server, Http::H1, "/healthz", &[("x-api-key", PROBER)]).await;
    assert_eq!((status, body.as_str()), (503, "NOT_SERVING\n"), "the route asks the health service");
    // What the route may ask on the key's behalf, the key may not ask itself.
    let call = request("POST", &format!("{}/grpc.health.v1.Health/Check", server.url()))
        .header("content-type", "application/json")
        .header("x-api-key", PROBER)
        .body(full("{}"))
        .unwrap();
    let reply = web::send(Http::H1, call).await;
    assert_eq!(reply.status, 403, "{:?}", reply.body);

    // `/healthz` open while the health service needs a key: the route still reports the health.
    let (server, _) = gateway(&keys(Some(r#"["/healthz"]"#))).await;
    let (status, _, body) = get(&server, Http::H1, "/healthz", &[]).await;
    assert_eq!((status, body.as_str()), (200, "SERVING\n"));
    let call = request("POST", &format!("{}/grpc.health.v1.Health/Check", server.url()))
        .header("content-type", "application/json")
        .body(full("{}"))
        .unwrap();
    assert_eq!(web::send(Http::H1, call).await.status, 401, "the health service itself needs a key");
}

/// Paths that look like `/metrics` or `/healthz` but are not, and ones that are: with both
/// routes under keys, none gives their content without a key.
const TRICKS: &[&str] = &[
    "/metrics",
    "/metrics?x=1",
    "/metrics/",
    "//metrics",
    "/%6detrics",
    "/%2Fmetrics",
    "/./metrics",
    "/vendor/../metrics",
    "/METRICS",
    "/metrics;x",
    "/metrics%00",
    "/healthz/",
    "//healthz",
    "/%68ealthz",
];

/// Whether `body` is what `/metrics` or `/healthz` says.
fn leaks(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body);
    text.contains("portway_") || text.contains("SERVING")
}

#[tokio::test]
async fn path_tricks_reach_no_protected_route() {
    // Everything under keys: every plain path is refused without one, whichever route it reaches.
    let (strict, _) = gateway(&keys(Some("[]"))).await;
    // The demo's files open: a trick that reaches them gets a file (or 404), never metrics.
    let (demo_open, _) = gateway(&keys(Some(r#"["/"]"#))).await;
    for path in TRICKS {
        for form in [format!("GET {path} HTTP/1.1"), format!("GET http://localhost{path} HTTP/1.1")] {
            let head = format!("{form}\r\nhost: localhost\r\n\r\n");
            let resp = raw(strict.addr, &head).await;
            assert!(resp.status == 401 && !leaks(&resp.body), "strict, {form}: {resp:?}");
            let resp = raw(demo_open.addr, &head).await;
            assert!(matches!(resp.status, 401 | 404) && !leaks(&resp.body), "demo open, {form}: {resp:?}");
        }
        // (OPTIONS is answered by CORS, with no content.)
        for method in ["HEAD", "POST", "OPTIONS"] {
            let head = format!("{method} {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n");
            let all = raw_all(demo_open.addr, &head).await;
            let refused = method == "OPTIONS" || !all.starts_with("HTTP/1.1 200");
            assert!(refused && !leaks(all.as_bytes()), "demo open, {method} {path}: {all}");
        }
    }
    // HTTP/2 sends `:path` as given.
    let mut h2 = H2::handshake(demo_open.addr, &[]).await;
    for path in TRICKS {
        let id = h2.next_stream_id();
        let headers = [(":method", "GET"), (":scheme", "http"), (":authority", "localhost"), (":path", path)];
        h2.headers(id, &headers, true).await;
        let stream = guard(h2.stream(id)).await;
        let status = stream.header(0, ":status").unwrap_or("none");
        assert!(matches!(status, "401" | "404") && !leaks(&stream.data), "HTTP/2 {path}: {}", stream.describe());
    }
}

#[tokio::test]
async fn an_early_refusal_on_http1_drains_a_small_body_or_closes() {
    let (server, _) = gateway(&keys(Some("[]"))).await;
    // A small body is read and discarded: the connection serves the next request.
    let (mut reader, mut write) = h1raw::connect(server.addr).await;
    let small = "POST /metrics HTTP/1.1\r\nhost: localhost\r\ncontent-length: 5\r\n\r\nhello";
    guard(write.write_all(small.as_bytes())).await.unwrap();
    let resp = guard(reader.response()).await.unwrap();
    assert!(resp.status == 401 && !resp.closes(), "{resp:?}");
    let next = format!("GET /metrics HTTP/1.1\r\nhost: localhost\r\nx-api-key: {SCRAPER}\r\n\r\n");
    guard(write.write_all(next.as_bytes())).await.unwrap();
    let resp = guard(reader.response()).await.unwrap();
    assert!(resp.status == 200 && leaks(&resp.body), "{resp:?}");
    // A body too long to drain: the refusal says the connection closes, and it does.
    let (mut reader, mut write) = h1raw::connect(server.addr).await;
    let big = "POST /metrics HTTP/1.1\r\nhost: localhost\r\ncontent-length: 100000000\r\n\r\npartial body";
    guard(write.write_all(big.as_bytes())).await.unwrap();
    let resp = guard(reader.response()).await.unwrap();
    assert!(resp.status == 401 && resp.closes(), "{resp:?}");
    assert!(reader.closed().await);
}

/// The binary with `keys` and `--metrics-listen`; the metrics listener's address.
async fn binary(keys: &str) -> (Logged, std::net::SocketAddr, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.toml");
    std::fs::write(&path, keys).unwrap();
    let args = ["--storage", "memory", "--metrics-listen", "127.0.0.1:0", "--api-keys", path.to_str().unwrap()];
    let mut child = Logged::start(&args).await;
    let line = child.wait_for("metrics listening").await;
    let addr = line.split("address=").nth(1).and_then(|a| a.split_whitespace().next()?.parse().ok()).unwrap();
    (child, addr, dir)
}

#[tokio::test]
async fn the_metrics_listener_follows_the_same_rule() {
    let get = |key: &str| format!("GET /metrics HTTP/1.1\r\nhost: localhost\r\nx-api-key: {key}\r\n\r\n");
    let (child, metrics, _dir) = binary(&keys(Some(r#"["/healthz"]"#))).await;
    for addr in [child.addr, metrics] {
        let resp = raw(addr, "GET /metrics HTTP/1.1\r\nhost: localhost\r\n\r\n").await;
        assert!(resp.status == 401 && resp.header("www-authenticate").is_some_and(|c| c.starts_with("Bearer")));
        assert!(!leaks(&resp.body), "{resp:?}");
        assert_eq!(raw(addr, &get(RPC)).await.status, 403);
        let resp = raw(addr, &get(SCRAPER)).await;
        assert!(resp.status == 200 && leaks(&resp.body), "{resp:?}");
        for path in ["/metrics/", "//metrics", "/%6detrics"] {
            let resp = raw(addr, &format!("GET {path} HTTP/1.1\r\nhost: localhost\r\n\r\n")).await;
            assert!(matches!(resp.status, 401 | 404) && !leaks(&resp.body), "{addr} {path}: {resp:?}");
        }
    }
    // The metrics listener reads no body: a request with one is answered, then the
    // connection closes, so a client still writing learns that its body went unread.
    let (mut reader, mut write) = h1raw::connect(metrics).await;
    let big = "POST /metrics HTTP/1.1\r\nhost: localhost\r\ncontent-length: 100000000\r\n\r\npartial body";
    guard(write.write_all(big.as_bytes())).await.unwrap();
    let resp = guard(reader.response()).await.unwrap();
    assert!(resp.status == 401 && resp.closes(), "{resp:?}");
    assert!(reader.closed().await);
    // HTTP/2 on the metrics listener too.
    let reply = web::send(Http::H2, request("GET", &format!("http://{metrics}/metrics")).body(full("")).unwrap()).await;
    assert_eq!(reply.status, 401);
    drop(child);
    // Without an `exempt` list, the listener is open, as before the key file could name it.
    let (_child, metrics, _dir) = binary(&keys(None)).await;
    let resp = raw(metrics, "GET /metrics HTTP/1.1\r\nhost: localhost\r\n\r\n").await;
    assert!(resp.status == 200 && leaks(&resp.body), "{resp:?}");
}
