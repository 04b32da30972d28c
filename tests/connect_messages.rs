//! Connect messages as every other protocol has them: responses compressed when the client
//! accepts it (unary by `accept-encoding`, streams by `connect-accept-encoding`, per message),
//! and the one message limit on the decoded message, in both directions.

mod common;

use common::http::{self, CONNECT_END, Http, Reply, full, gunzip, parse_frames};
use portway::Config;
use serde_json::{Value, json};

const SVC: &str = "/grpc.testing.TestService";
const LIMIT: usize = 64 * 1024;

async fn post(url: &str, content_type: &str, body: impl Into<bytes::Bytes>, headers: &[(&str, &str)]) -> Reply {
    let mut req = http::request("POST", url).header("content-type", content_type);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    http::guard(http::send(Http::H2, req.body(full(body.into())).expect("request"))).await
}

/// The body of a unary response, decompressed if it says it is gzip.
fn unary_json(reply: &Reply) -> Value {
    let body = match reply.header("content-encoding") {
        Some("gzip") => gunzip(&reply.body),
        None => reply.body.to_vec(),
        Some(other) => panic!("unexpected content-encoding {other}"),
    };
    serde_json::from_slice(&body).expect("JSON")
}

/// The messages of a Connect stream, decompressed, each with whether it came compressed, and
/// the end-of-stream JSON.
fn stream_messages(reply: &Reply) -> (Vec<(bool, Value)>, Value) {
    let mut frames = parse_frames(&reply.body);
    let (flags, end) = frames.pop().expect("an end-of-stream envelope");
    assert_eq!(flags & CONNECT_END, CONNECT_END, "the last envelope ends the stream");
    let messages = frames
        .into_iter()
        .map(|(flags, m)| {
            let compressed = flags & 1 == 1;
            let text = if compressed { gunzip(&m) } else { m.to_vec() };
            (compressed, serde_json::from_slice(&text).expect("JSON message"))
        })
        .collect();
    (messages, serde_json::from_slice(&end).expect("end JSON"))
}

fn body_len(message: &Value) -> usize {
    message["payload"]["body"].as_str().map_or(0, str::len)
}

#[tokio::test]
async fn unary_responses_are_gzip_when_accepted() {
    let server = common::start_interop(Config::default()).await;
    let url = format!("{}{SVC}/UnaryCall", server.url());
    let big = json!({"responseSize": 20_000}).to_string();
    for (accept, compressed) in [
        (Some("gzip"), true),
        (Some("br, gzip;q=0.5"), true),
        (Some("*"), true),
        (Some("gzip;q=0"), false),
        (Some("br"), false),
        (None, false),
    ] {
        let headers: Vec<(&str, &str)> = accept.map(|a| ("accept-encoding", a)).into_iter().collect();
        let reply = post(&url, "application/json", big.clone(), &headers).await;
        assert_eq!(reply.status, 200, "{accept:?}: {reply:?}");
        assert_eq!(reply.header("content-encoding") == Some("gzip"), compressed, "{accept:?}: {:?}", reply.headers);
        assert_eq!(body_len(&unary_json(&reply)), 20_000usize.div_ceil(3) * 4, "{accept:?}");
        if compressed {
            assert!(reply.body.len() < 1000, "{accept:?}: zeros compress well ({} bytes)", reply.body.len());
        }
    }
    // Small responses are not worth compressing.
    let reply = post(&url, "application/json", r#"{"responseSize": 10}"#, &[("accept-encoding", "gzip")]).await;
    assert_eq!(reply.header("content-encoding"), None, "{reply:?}");
    // A gzip request with no accept-encoding gets a gzip response, as Connect clients expect.
    let reply =
        post(&url, "application/proto", http::gzip(&[0x10, 0xa0, 0x9c, 0x01]), &[("content-encoding", "gzip")]).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.header("content-encoding"), Some("gzip"), "{reply:?}");
}

#[tokio::test]
async fn stream_responses_are_gzip_per_message_when_accepted() {
    let server = common::start_interop(Config::default()).await;
    let url = format!("{}{SVC}/StreamingOutputCall", server.url());
    let req = json!({"responseParameters": [{"size": 20_000}, {"size": 10}]}).to_string();
    let reply =
        post(&url, "application/connect+json", http::frame(0, req.as_bytes()), &[("connect-accept-encoding", "gzip")])
            .await;
    assert_eq!(reply.header("connect-content-encoding"), Some("gzip"), "{reply:?}");
    let (messages, end) = stream_messages(&reply);
    assert_eq!(end, json!({}), "the stream ends OK");
    let shape: Vec<(bool, usize)> = messages.iter().map(|(c, m)| (*c, body_len(m))).collect();
    // The large message compressed, the small one (under 1 KiB) not: the flag is per message.
    assert_eq!(shape, [(true, 20_000usize.div_ceil(3) * 4), (false, 16)]);

    let reply = post(&url, "application/connect+json", http::frame(0, req.as_bytes()), &[]).await;
    assert_eq!(reply.header("connect-content-encoding"), None, "{reply:?}");
    let (messages, _) = stream_messages(&reply);
    assert!(messages.iter().all(|(c, _)| !c), "nothing compressed unless accepted");
}

#[tokio::test]
async fn the_limit_is_on_the_decoded_message_both_ways() {
    let mut config = Config::default();
    config.max_message_bytes = LIMIT;
    let server = common::start_interop(config).await;
    let unary = format!("{}{SVC}/UnaryCall", server.url());
    let stream = format!("{}{SVC}/StreamingOutputCall", server.url());
    // A payload of n bytes encodes to n + 8 (tags and 3-byte lengths), inside the response
    // (or request) message.
    let under = LIMIT - 1024 - 8;
    let payload = |n: usize| json!({"body": base64_zeros(n)});
    for ct in ["application/json", "application/proto"] {
        let json_body = |v: Value| if ct == "application/json" { v.to_string().into_bytes() } else { proto(&v) };
        // Requests: JSON text of ~86 KiB (base64) for a message 1 KiB under: it passes.
        let reply = post(&unary, ct, json_body(json!({"payload": payload(under)})), &[]).await;
        assert_eq!(reply.status, 200, "{ct} request under: {reply:?}");
        let reply = post(&unary, ct, json_body(json!({"payload": payload(LIMIT)})), &[]).await;
        assert_eq!(reply.status, 429, "{ct} request over: {reply:?}");
        // Responses, gzip accepted or not: measured decoded.
        for accept in [None, Some("gzip")] {
            let headers: Vec<(&str, &str)> = accept.map(|a| ("accept-encoding", a)).into_iter().collect();
            let reply = post(&unary, ct, json_body(json!({"responseSize": under})), &headers).await;
            assert_eq!(reply.status, 200, "{ct} {accept:?} response under: {reply:?}");
            let reply = post(&unary, ct, json_body(json!({"responseSize": LIMIT})), &headers).await;
            assert_eq!(reply.status, 429, "{ct} {accept:?} response over: {reply:?}");
        }
    }
    // Streams: the message over the limit ends the stream with resource_exhausted.
    let req = json!({"responseParameters": [{"size": under}, {"size": LIMIT}]}).to_string();
    let reply = post(
        &stream,
        "application/connect+json",
        http::frame(0, req.as_bytes()),
        &[("connect-accept-encoding", "gzip")],
    )
    .await;
    let (messages, end) = stream_messages(&reply);
    assert_eq!(messages.len(), 1, "the message under the limit is relayed: {end}");
    assert_eq!(end["error"]["code"], "resource_exhausted", "{end}");
}

fn base64_zeros(n: usize) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(vec![0u8; n])
}

/// The protobuf of the few `SimpleRequest` shapes used here (`responseSize`, `payload.body`),
/// made with prost's generated types rather than the gateway's JSON codec.
fn proto(v: &Value) -> Vec<u8> {
    use prost::Message as _;
    let mut req = portway::pb::grpc::testing::SimpleRequest::default();
    if let Some(size) = v["responseSize"].as_u64() {
        req.response_size = i32::try_from(size).expect("size");
    }
    if let Some(body) = v["payload"]["body"].as_str() {
        use base64::Engine as _;
        let body = base64::engine::general_purpose::STANDARD.decode(body).expect("base64");
        req.payload = Some(portway::pb::grpc::testing::Payload { r#type: 0, body });
    }
    req.encode_to_vec()
}
