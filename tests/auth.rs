//! Authentication and rate limits on every protocol: the same calls through native gRPC,
//! gRPC-Web (binary and text), Connect (JSON and proto) and WebSocket give the same code,
//! against a real gateway whose stack carries the auth and rate layers.
//!
//! Signatures are computed here from the definition in docs/auth.md (HMAC-SHA256 with the
//! key's SHA-256 as secret), not with the gateway's own code.

// Tests may unwrap (`clippy::unwrap_used` is denied for the crate in Cargo.toml).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::http::guard;
use common::protocols::{Outcome, ProtocolClient, Rpc, clients, code_from_connect, rpc as make_rpc};
use common::{TestServer, serve_gateway};
use hmac::{KeyInit as _, Mac as _};
use portway::auth::{AuthLayer, AuthOptions, KeySet};
use portway::pb::grpc::testing::{Empty, SimpleRequest, SimpleResponse};
use portway::rate::{Rate, RateLayer, RateOptions};
use portway::services::ServiceOptions;
use sha2::{Digest as _, Sha256};
use tonic::Code;

const KEYS: &str = r#"
    [[key]]
    id = "full"
    key = "full-key-0123456789"
    methods = ["*"]

    [[key]]
    id = "empty-only"
    sha256 = "SHA_OF_EMPTY_KEY"
    methods = ["grpc.testing.TestService/EmptyCall"]

    [[key]]
    id = "signer"
    key = "signer-key-0123456789"
    methods = ["grpc.testing.*"]
    require_signature = true

    [[key]]
    id = "one-at-a-time"
    key = "one-at-a-time-key"
    methods = ["*"]
    max_concurrent = 1
"#;

/// The rate test's keys: one per client, 1 call per second in bursts of 2.
fn rate_keys(n: usize) -> String {
    (0..n)
        .map(|i| format!("[[key]]\nid = \"rate-{i}\"\nkey = \"rate-key-{i}\"\nmethods = [\"*\"]\nrate_per_second = 1\nburst = 2\n"))
        .collect()
}

async fn gateway(keys: &str, rates: RateOptions) -> TestServer {
    let mounted = common::mount_interop(ServiceOptions::default()).await;
    let keys = KeySet::parse(keys).unwrap();
    let builder = portway::Gateway::builder(mounted.routes)
        .auth(AuthLayer::new(keys, AuthOptions::default()))
        .shared_layer(RateLayer::new(rates));
    serve_gateway(builder.build()).await
}

async fn matrix_gateway() -> TestServer {
    let digest = hex::encode(Sha256::digest(b"empty-only-key"));
    gateway(&KEYS.replace("SHA_OF_EMPTY_KEY", &digest), RateOptions::default()).await
}

fn unary() -> Rpc {
    let req = SimpleRequest { response_size: 3, ..Default::default() };
    make_rpc::<SimpleRequest, SimpleResponse>("/grpc.testing.TestService/UnaryCall", req)
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// The signature headers of a call, as docs/auth.md defines them.
fn signed(key: &str, key_id: &str, path: &str, timestamp: i64, content: &str) -> Vec<(&'static str, String)> {
    let secret = Sha256::digest(key.as_bytes());
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(&secret).unwrap();
    let nonce = format!("{:016x}", rand_nonce());
    mac.update(format!("PORTWAY-HMAC-SHA256\n{timestamp}\n{nonce}\n{path}\n{content}").as_bytes());
    vec![
        ("x-portway-nonce", nonce),
        ("x-portway-key-id", key_id.to_string()),
        ("x-portway-timestamp", timestamp.to_string()),
        ("x-portway-content-sha256", content.to_string()),
        ("x-portway-signature", hex::encode(mac.finalize().into_bytes())),
    ]
}

/// Request metadata: (name, value) pairs.
type Metadata = Vec<(&'static str, String)>;

/// A nonce no other call of this process uses.
fn rand_nonce() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) ^ (std::process::id() as u64) << 32
}

fn refs<'a>(md: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    md.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

async fn call(client: &dyn ProtocolClient, rpc: &Rpc, md: &[(&'static str, String)]) -> Outcome {
    guard(client.unary(rpc, &refs(md), None)).await
}

/// Runs `case` on every client at once; each must end with `expected`.
async fn everywhere<F, Fut>(server: &TestServer, what: &str, expected: Code, case: F)
where
    F: Fn(Box<dyn ProtocolClient>) -> Fut,
    Fut: std::future::Future<Output = (&'static str, Outcome)>,
{
    let outcomes = futures_util::future::join_all(clients(server).into_iter().map(case)).await;
    for (name, o) in outcomes {
        assert_eq!(o.code, expected as i32, "{what} over {name}: {o:?}");
    }
}

#[tokio::test]
async fn credentials_matrix_is_the_same_on_every_protocol() {
    let server = matrix_gateway().await;
    let rpc = &unary();
    let header_cases: [(&str, Metadata, Code); 7] = [
        ("no credentials", vec![], Code::Unauthenticated),
        ("a wrong bearer key", vec![("authorization", "Bearer not-a-key".into())], Code::Unauthenticated),
        ("a wrong x-api-key", vec![("x-api-key", "not-a-key".into())], Code::Unauthenticated),
        ("a key without this method", vec![("x-api-key", "empty-only-key".into())], Code::PermissionDenied),
        ("a key that must sign, unsigned", vec![("x-api-key", "signer-key-0123456789".into())], Code::Unauthenticated),
        ("a valid bearer key", vec![("authorization", "Bearer full-key-0123456789".into())], Code::Ok),
        ("a valid x-api-key", vec![("x-api-key", "full-key-0123456789".into())], Code::Ok),
    ];
    for (what, md, expected) in &header_cases {
        everywhere(&server, what, *expected, |c| async move { (c.name(), call(&*c, rpc, md).await) }).await;
    }
    // A key file given as a digest authenticates as well as one given in clear.
    let empty = make_rpc::<Empty, Empty>("/grpc.testing.TestService/EmptyCall", Empty {});
    let md = vec![("x-api-key", "empty-only-key".to_string())];
    everywhere(&server, "a digest key on its method", Code::Ok, |c| {
        let (empty, md) = (&empty, &md);
        async move { (c.name(), call(&*c, empty, md).await) }
    })
    .await;
}

#[tokio::test]
async fn signatures_expire_cannot_be_replayed_and_cover_the_body() {
    let server = matrix_gateway().await;
    let rpc = &unary();
    let digest = hex::encode(Sha256::digest(&rpc.proto));
    let path = rpc.path;
    let sign = |at: i64, content: &str| signed("signer-key-0123456789", "signer", path, at, content);

    everywhere(&server, "a signature 10 minutes old", Code::Unauthenticated, |c| {
        let md = sign(now() - 600, &digest);
        async move { (c.name(), call(&*c, rpc, &md).await) }
    })
    .await;
    everywhere(&server, "a signature from 10 minutes ahead", Code::Unauthenticated, |c| {
        let md = sign(now() + 600, &digest);
        async move { (c.name(), call(&*c, rpc, &md).await) }
    })
    .await;
    everywhere(&server, "a signature by another key", Code::Unauthenticated, |c| {
        let md = signed("full-key-0123456789", "signer", path, now(), &digest);
        async move { (c.name(), call(&*c, rpc, &md).await) }
    })
    .await;
    everywhere(&server, "a signature over another body", Code::Unauthenticated, |c| {
        let md = sign(now(), &hex::encode(Sha256::digest(b"other")));
        async move { (c.name(), call(&*c, rpc, &md).await) }
    })
    .await;
    // Every client signs its own call (a signature is good once), then replays it.
    everywhere(&server, "a fresh signature over the body, then its replay", Code::Unauthenticated, |c| {
        let md = sign(now(), &digest);
        async move {
            let first = call(&*c, rpc, &md).await;
            assert_eq!(first.code, 0, "a fresh signed call over {}: {first:?}", c.name());
            let replay = call(&*c, rpc, &md).await;
            assert!(replay.message.contains("already used"), "{replay:?}");
            (c.name(), replay)
        }
    })
    .await;
    everywhere(&server, "a signed call without a body digest", Code::Ok, |c| {
        let md = sign(now(), "UNSIGNED-PAYLOAD");
        async move { (c.name(), call(&*c, rpc, &md).await) }
    })
    .await;
}

#[tokio::test]
async fn exempt_methods_need_no_key_and_others_do() {
    let server = matrix_gateway().await;
    let health = make_rpc::<
        portway::pb::grpc::health::v1::HealthCheckRequest,
        portway::pb::grpc::health::v1::HealthCheckResponse,
    >("/grpc.health.v1.Health/Check", Default::default());
    everywhere(&server, "health without a key", Code::Ok, |c| {
        let health = &health;
        async move { (c.name(), call(&*c, health, &[]).await) }
    })
    .await;
}

/// A plain route (docs/auth.md) takes a signature as a call does, with the request's path.
#[tokio::test]
async fn a_signed_request_reaches_a_plain_route() {
    let keys = "exempt = []\n[[key]]\nid = \"scraper\"\nkey = \"scraper-key-0123\"\nmethods = [\"/metrics\"]\nrequire_signature = true\n";
    let server = gateway(keys, RateOptions::default()).await;
    let get = |md: &Metadata| {
        let mut req = common::http::request("GET", &format!("{}/metrics", server.url()));
        for (k, v) in md {
            req = req.header(*k, v);
        }
        common::http::send(common::http::Http::H1, req.body(common::http::full("")).unwrap())
    };
    let unsigned = get(&vec![("x-api-key", "scraper-key-0123".to_string())]).await;
    assert_eq!(unsigned.status, 401, "the key may only sign");
    let md = signed("scraper-key-0123", "scraper", "/metrics", now(), "UNSIGNED-PAYLOAD");
    let reply = get(&md).await;
    assert!(reply.status == 200 && String::from_utf8_lossy(&reply.body).contains("portway_"), "{reply:?}");
    assert_eq!(get(&md).await.status, 401, "a signature is good for one request");
    let elsewhere = signed("scraper-key-0123", "scraper", "/healthz", now(), "UNSIGNED-PAYLOAD");
    assert_eq!(get(&elsewhere).await.status, 401, "the signature covers the path");
}

#[tokio::test]
async fn concurrent_calls_per_key_are_bounded_across_protocols() {
    let server = matrix_gateway().await;
    // A server stream that stays open holds the key's one place.
    let channel = server.channel().await;
    let mut client = portway::pb::grpc::testing::test_service_client::TestServiceClient::new(channel);
    let (tx, rx) = tokio::sync::mpsc::channel::<portway::pb::grpc::testing::StreamingOutputCallRequest>(1);
    let mut req = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    req.metadata_mut().insert("x-api-key", "one-at-a-time-key".parse().unwrap());
    let mut held = guard(client.full_duplex_call(req)).await.unwrap().into_inner();
    let rpc = &unary();
    let md = vec![("x-api-key", "one-at-a-time-key".to_string())];
    everywhere(&server, "a second call while one is open", Code::ResourceExhausted, |c| {
        let md = &md;
        async move { (c.name(), call(&*c, rpc, md).await) }
    })
    .await;
    // Half-closing ends the call (the interop service answers OK), and with it its place.
    drop(tx);
    assert!(guard(held.message()).await.unwrap().is_none());
    // The place is given back when the open call ends (its response body dropped).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let native = clients(&server).into_iter().next().unwrap();
    loop {
        let o = call(&*native, rpc, &md).await;
        if o.code == 0 {
            break;
        }
        assert_eq!(o.code, Code::ResourceExhausted as i32, "{o:?}");
        assert!(tokio::time::Instant::now() < deadline, "the key's place was never given back");
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn rate_limits_per_key_are_hit_and_recover_on_every_protocol() {
    let n = clients(&matrix_gateway().await).len();
    let server = gateway(&rate_keys(n), RateOptions::default()).await;
    let rpc = &unary();
    let outcomes = futures_util::future::join_all(clients(&server).into_iter().enumerate().map(|(i, c)| async move {
        let md = vec![("x-api-key", format!("rate-key-{i}"))];
        // A burst of 2, then the third call within the second is refused.
        for _ in 0..2 {
            let o = call(&*c, rpc, &md).await;
            assert_eq!(o.code, 0, "{}: {o:?}", c.name());
        }
        let refused = call(&*c, rpc, &md).await;
        (c, md, refused)
    }))
    .await;
    for (c, md, refused) in outcomes {
        assert_eq!(refused.code, Code::ResourceExhausted as i32, "{}: {refused:?}", c.name());
        assert!(refused.message.contains("retry in"), "{}: {refused:?}", c.name());
        assert_eq!(refused.retry_after.as_deref(), Some("1"), "{}: {refused:?}", c.name());
        // Waiting as long as the message says is enough.
        let ms: u64 = refused.message.rsplit("retry in ").next().unwrap().trim_end_matches(" ms").parse().unwrap();
        tokio::time::sleep(Duration::from_millis(ms)).await;
        let again = call(&*c, rpc, &md).await;
        assert_eq!(again.code, 0, "{} after the retry hint: {again:?}", c.name());
    }
}

#[tokio::test]
async fn rate_limits_per_address_are_hit_and_recover_on_every_protocol() {
    // One gateway per protocol: every client here comes from 127.0.0.1.
    let n = clients(&matrix_gateway().await).len();
    let per_address = Rate { per_second: 1.try_into().unwrap(), burst: 2.try_into().unwrap() };
    let runs = (0..n).map(|i| async move {
        let mut rates = RateOptions::default();
        rates.per_address = Some(per_address);
        let server = gateway(&rate_keys(1), rates).await;
        let c = clients(&server).into_iter().nth(i).unwrap();
        let rpc = &unary();
        let md = vec![("x-api-key", "rate-key-0".to_string())];
        let mut codes = Vec::new();
        for _ in 0..3 {
            codes.push(call(&*c, rpc, &md).await);
        }
        assert_eq!(codes.iter().map(|o| o.code).collect::<Vec<_>>(), [0, 0, 8], "{}: {codes:?}", c.name());
        let refused = &codes[2];
        assert!(refused.message.contains("client address"), "{refused:?}");
        let ms: u64 = refused.message.rsplit("retry in ").next().unwrap().trim_end_matches(" ms").parse().unwrap();
        tokio::time::sleep(Duration::from_millis(ms)).await;
        let again = call(&*c, rpc, &md).await;
        assert_eq!(again.code, 0, "{} after the retry hint: {again:?}", c.name());
    });
    futures_util::future::join_all(runs).await;
}

/// One EmptyCall on a fresh WebSocket opened to `/ws{query}` with `headers` on the upgrade
/// and `protocols` offered; the call's gRPC code.
async fn websocket_call(server: &TestServer, query: &str, headers: &[(&str, &str)], protocols: &str) -> i32 {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut req = format!("ws://{}/ws{query}", server.addr).into_client_request().unwrap();
    req.headers_mut().insert("sec-websocket-protocol", protocols.parse().unwrap());
    for (k, v) in headers {
        req.headers_mut().insert(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
    }
    let (mut socket, _) = guard(tokio_tungstenite::connect_async(req)).await.unwrap();
    let open = serde_json::json!({"type": "open", "id": 1, "method": "/grpc.testing.TestService/EmptyCall", "message": {}, "end": true});
    socket.send(Message::text(open.to_string())).await.unwrap();
    loop {
        let Message::Text(text) = guard(socket.next()).await.unwrap().unwrap() else { continue };
        let frame: serde_json::Value = serde_json::from_str(&text).unwrap();
        if frame["type"] == "status" {
            return code_from_connect(frame["code"].as_str().unwrap());
        }
    }
}

/// What the case is, the query string, the upgrade's headers, the subprotocols, the code.
type WsCase<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, String, i32);

#[tokio::test]
async fn websocket_credentials_at_the_upgrade() {
    let server = matrix_gateway().await;
    let v1 = "portway.v1.json";
    let ok = Code::Ok as i32;
    let unauthenticated = Code::Unauthenticated as i32;
    let cases: [WsCase; 8] = [
        ("nothing", "", vec![], v1.into(), unauthenticated),
        ("authorization header", "", vec![("authorization", "Bearer full-key-0123456789")], v1.into(), ok),
        ("x-api-key header", "", vec![("x-api-key", "empty-only-key")], v1.into(), ok),
        ("bearer subprotocol", "", vec![], format!("{v1}, portway.bearer.full-key-0123456789"), ok),
        ("wrong bearer subprotocol", "", vec![], format!("{v1}, portway.bearer.nope"), unauthenticated),
        ("access_token query", "?access_token=full-key-0123456789", vec![], v1.into(), ok),
        ("cookie without an origin", "", vec![("cookie", "portway-api-key=full-key-0123456789")], v1.into(), ok),
        (
            "cookie from another origin (dropped)",
            "",
            vec![("cookie", "portway-api-key=full-key-0123456789"), ("origin", "https://elsewhere.example")],
            v1.into(),
            unauthenticated,
        ),
    ];
    for (what, query, headers, protocols, expected) in &cases {
        let code = websocket_call(&server, query, headers, protocols).await;
        assert_eq!(code, *expected, "{what}");
    }
}

/// A key file that cannot work stops the binary at start with a sentence naming the problem.
#[test]
fn the_binary_refuses_key_files_that_cannot_work() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[[key]]\nid = \"a\"\nmethods = [\"*\"]\n", "give exactly one of `key` or `sha256`"),
        ("[[key]]\nid = \"a\"\nkey = \"k\"\nmethods = [\"a*b*c\"]\n", "has more than one `*`"),
        ("[[key]]\nid = \"a\"\nkey = \"k\"\nmethods = [\"*\"]\nmax_concurrent = 0\n", "limits must be at least 1"),
        ("exempt = []\n", "the key file defines no key"),
        ("exempt = [\"/metric\"]\n[[key]]\nid = \"a\"\nkey = \"k\"\nmethods = [\"*\"]\n", "names no HTTP route"),
    ];
    for (i, (text, message)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("keys-{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_portway"))
            .args(["--storage", "memory", "--listen", "127.0.0.1:0", "--api-keys"])
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text:?} was accepted");
        assert!(stderr.contains(message) && stderr.contains(&*path.to_string_lossy()), "{text:?}: {stderr}");
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portway"))
        .args(["--storage", "memory", "--listen", "127.0.0.1:0", "--rate-per-key", "5"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("need API keys"), "{out:?}");
}
