//! The edges of the gRPC protocols, on native gRPC and gRPC-Web over real sockets: request
//! cardinality on single-message methods, HTTP methods other than POST (on any RPC path),
//! zero and malformed deadlines, the JSON codec, and the one message limit (decoded size,
//! compressed or not, both directions).

mod common;

use common::http::{self, Http, Reply, full, gunzip, gzip, parse_frames, request};
use portway::Config;
use portway::pb::grpc::testing::{Payload, SimpleRequest, SimpleResponse, StreamingOutputCallRequest};
use prost::Message as _;
use serde_json::{Value, json};
use tonic::Code;

const TS: &str = "/grpc.testing.TestService";
const LIMIT: usize = 64 * 1024;

/// A native gRPC (`application/grpc+proto` unless `content_type` says) or gRPC-Web request.
async fn call(
    version: Http,
    method: &str,
    url: &str,
    content_type: &str,
    body: Vec<u8>,
    headers: &[(&str, &str)],
) -> Reply {
    let mut req = request(method, url).header("content-type", content_type).header("te", "trailers");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    http::guard(http::send(version, req.body(full(body)).expect("request"))).await
}

/// `grpc-status` from the trailers, the headers (trailers-only) or a gRPC-Web trailers frame.
fn code(reply: &Reply) -> i32 {
    let web_trailers = parse_frames(&reply.body)
        .into_iter()
        .find(|(flags, _)| flags & http::WEB_TRAILERS != 0)
        .map(|(_, block)| http::parse_trailer_block(&block));
    let v = reply
        .trailers
        .as_ref()
        .and_then(|t| t.get("grpc-status"))
        .or_else(|| reply.headers.get("grpc-status"))
        .or_else(|| web_trailers.as_ref().and_then(|t| t.get("grpc-status")))
        .unwrap_or_else(|| panic!("no grpc-status: {reply:?}"))
        .clone();
    v.to_str().expect("ascii").parse().expect("number")
}

fn grpc_message(reply: &Reply) -> String {
    let v = reply.trailers.as_ref().and_then(|t| t.get("grpc-message")).or_else(|| reply.headers.get("grpc-message"));
    v.map(|v| percent_encoding::percent_decode(v.as_bytes()).decode_utf8_lossy().into_owned()).unwrap_or_default()
}

/// The message payloads of a response (not the gRPC-Web trailers frame).
fn messages(reply: &Reply) -> Vec<(u8, bytes::Bytes)> {
    parse_frames(&reply.body).into_iter().filter(|(flags, _)| flags & http::WEB_TRAILERS == 0).collect()
}

/// The two framings under test: native gRPC over HTTP/2, gRPC-Web over both versions.
const TRANSPORTS: [(&str, Http, &str); 3] = [
    ("gRPC", Http::H2, "application/grpc"),
    ("gRPC-Web h1", Http::H1, "application/grpc-web+proto"),
    ("gRPC-Web h2", Http::H2, "application/grpc-web+proto"),
];

#[tokio::test]
async fn single_message_methods_refuse_zero_or_two_messages() {
    let server = common::start_interop(Config::default()).await;
    let one = SimpleRequest::default().encode_to_vec();
    let stream_req = StreamingOutputCallRequest::default().encode_to_vec();
    for (name, version, ct) in TRANSPORTS {
        for (method, msg) in [("UnaryCall", &one), ("StreamingOutputCall", &stream_req)] {
            let url = format!("{}{TS}/{method}", server.url());
            let zero = call(version, "POST", &url, ct, vec![], &[]).await;
            assert_eq!(code(&zero), Code::Unimplemented as i32, "{name} {method}, no message: {zero:?}");
            let two = http::frames([msg.as_slice(), msg.as_slice()]);
            let two = call(version, "POST", &url, ct, two, &[]).await;
            assert_eq!(code(&two), Code::Unimplemented as i32, "{name} {method}, two messages: {two:?}");
            assert!(messages(&two).is_empty(), "{name} {method}: the handler must not have answered");
            let ok = call(version, "POST", &url, ct, http::frame(0, msg), &[]).await;
            assert_eq!(code(&ok), 0, "{name} {method}, one message: {ok:?}");
        }
    }
}

#[tokio::test]
async fn only_post_is_a_grpc_call() {
    let server = common::start_interop(Config::default()).await;
    let url = format!("{}{TS}/UnaryCall", server.url());
    for (name, version, ct) in TRANSPORTS {
        for method in ["GET", "PUT", "DELETE", "PATCH"] {
            let body = if method == "GET" { vec![] } else { http::frame(0, &SimpleRequest::default().encode_to_vec()) };
            let reply = call(version, method, &url, ct, body, &[]).await;
            assert_eq!(reply.status, 405, "{name} {method}: {reply:?}");
            assert_eq!(reply.header("allow"), Some("POST"), "{name} {method}");
            assert_eq!(code(&reply), Code::Internal as i32, "{name} {method}");
        }
    }
}

/// On an RPC path, a method no RPC protocol uses (whatever the content type but gRPC's) is
/// 405 with what the path takes; the plain HTTP routes keep their own answers.
#[tokio::test]
async fn other_methods_on_an_rpc_path_are_not_allowed() {
    let server = common::start_interop(Config::default()).await;
    let send = |version, method: &str, path: &str, ct: Option<&str>| {
        let mut req = request(method, &format!("{}{path}", server.url()));
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        http::send(version, req.body(full(if method == "TRACE" { vec![] } else { b"{}".to_vec() })).unwrap())
    };
    let paths = [(format!("{TS}/UnaryCall"), "POST"), (format!("{TS}/CacheableUnaryCall"), "GET, POST")];
    for version in [Http::H1, Http::H2] {
        for (path, allow) in &paths {
            for ct in [Some("application/json"), Some("application/connect+proto"), Some("text/plain"), None] {
                for method in ["PUT", "PATCH", "DELETE", "TRACE", "BREW"] {
                    let reply = send(version, method, path, ct).await;
                    let what = format!("{version:?} {method} {path} {ct:?}");
                    assert_eq!(reply.status, 405, "{what}: {reply:?}");
                    assert_eq!(reply.header("allow"), Some(*allow), "{what}");
                    let text = String::from_utf8_lossy(&reply.body);
                    assert!(
                        text.starts_with(&format!("an RPC is not called with {method}: use POST")),
                        "{what}: {text}"
                    );
                }
            }
        }
        // A path the gateway does not serve, of the RPC form, is still an RPC path.
        let reply = send(version, "DELETE", "/no.Such/Method", None).await;
        assert_eq!((reply.status.as_u16(), reply.header("allow")), (405, Some("POST")), "{version:?}: {reply:?}");
        // Plain HTTP: not RPC paths, answered as before.
        for (method, path, status) in
            [("PUT", "/healthz", 405), ("DELETE", "/metrics", 405), ("PUT", "/nope.html", 404)]
        {
            let reply = send(version, method, path, None).await;
            assert_eq!(reply.status, status, "{version:?} {method} {path}: {reply:?}");
            assert_ne!(reply.header("allow"), Some("POST"), "{version:?} {method} {path}");
        }
    }
}

#[tokio::test]
async fn a_zero_deadline_ends_the_call_before_it_runs() {
    let (server, mut ran) = common::start_scripted(Config::default()).await;
    // The slow call reports when its handler is dropped: had it started, it would report.
    let slow = SimpleRequest {
        payload: Some(Payload { r#type: 0, body: common::scripted::SLOW.to_vec() }),
        ..Default::default()
    };
    let url = format!("{}{TS}/UnaryCall", server.url());
    for (name, version, ct) in TRANSPORTS {
        for zero in ["0n", "0u", "0m", "0S", "0M", "0H", "00000000n"] {
            let body = http::frame(0, &slow.encode_to_vec());
            let reply = call(version, "POST", &url, ct, body, &[("grpc-timeout", zero)]).await;
            assert_eq!(code(&reply), Code::DeadlineExceeded as i32, "{name} grpc-timeout {zero}: {reply:?}");
            assert!(ran.try_recv().is_err(), "{name} grpc-timeout {zero}: the handler ran");
        }
    }
    // Connect's zero timeout is the same deadline.
    let req = request("POST", &url)
        .header("content-type", "application/proto")
        .header("connect-protocol-version", "1")
        .header("connect-timeout-ms", "0")
        .body(full(slow.encode_to_vec()))
        .expect("request");
    let reply = http::guard(http::send(Http::H1, req)).await;
    assert_eq!(reply.json()["code"], "deadline_exceeded", "Connect-Timeout-Ms: 0: {reply:?}");
    assert!(ran.try_recv().is_err(), "Connect-Timeout-Ms: 0: the handler ran");
}

#[tokio::test]
async fn a_malformed_deadline_is_refused_with_a_sentence() {
    let server = common::start_interop(Config::default()).await;
    let url = format!("{}{TS}/UnaryCall", server.url());
    let body = http::frame(0, &SimpleRequest::default().encode_to_vec());
    for (name, version, ct) in TRANSPORTS {
        for bad in ["soon", "1", "m", "123456789m", "-1m", "1.5S", "1s", "1 m"] {
            let reply = call(version, "POST", &url, ct, body.clone(), &[("grpc-timeout", bad)]).await;
            // gRPC libraries never answer INVALID_ARGUMENT for this themselves; grpc-go says INTERNAL.
            assert_eq!(code(&reply), Code::Internal as i32, "{name} grpc-timeout {bad:?}: {reply:?}");
            if name == "gRPC" {
                let message = grpc_message(&reply);
                assert!(message.contains("grpc-timeout") && message.contains(bad), "{name} {bad:?}: {message}");
            }
        }
    }
}

/// One envelope of JSON text.
fn json_frame(value: &Value) -> Vec<u8> {
    http::frame(0, value.to_string().as_bytes())
}

fn json_messages(reply: &Reply) -> Vec<Value> {
    messages(reply).iter().map(|(_, m)| serde_json::from_slice(m).expect("a JSON message")).collect()
}

#[tokio::test]
async fn the_json_codec_on_grpc_and_grpc_web() {
    let server = common::start_interop(Config::default()).await;
    let unary = format!("{}{TS}/UnaryCall", server.url());
    let stream = format!("{}{TS}/StreamingOutputCall", server.url());
    let cases = [
        ("gRPC", Http::H2, "application/grpc+json"),
        ("gRPC-Web h1", Http::H1, "application/grpc-web+json"),
        ("gRPC-Web h2", Http::H2, "application/grpc-web+json"),
    ];
    for (name, version, ct) in cases {
        let reply =
            call(version, "POST", &unary, ct, json_frame(&json!({"responseSize": 3, "fillServerId": true})), &[]).await;
        assert_eq!(code(&reply), 0, "{name}: {reply:?}");
        assert_eq!(reply.header("content-type"), Some(ct), "{name}");
        assert_eq!(json_messages(&reply), [json!({"payload": {"body": "AAAA"}, "serverId": "portway"})], "{name}");

        let req = json!({"responseParameters": [{"size": 1}, {"size": 2}]});
        let reply = call(version, "POST", &stream, ct, json_frame(&req), &[]).await;
        assert_eq!(code(&reply), 0, "{name}: {reply:?}");
        assert_eq!(json_messages(&reply), [json!({"payload": {"body": "AA=="}}), json!({"payload": {"body": "AAA="}})]);

        // JSON the request type does not accept is the client's error.
        let reply = call(version, "POST", &unary, ct, json_frame(&json!({"responseSize": "x"})), &[]).await;
        assert_eq!(code(&reply), Code::InvalidArgument as i32, "{name}: {reply:?}");
        // Flag bits gRPC reserves (a trailer frame among them) are a malformed frame.
        for flags in [0x02, 0x80] {
            let body = http::frame(flags, json!({"responseSize": 1}).to_string().as_bytes());
            let reply = call(version, "POST", &unary, ct, body, &[]).await;
            assert_eq!(code(&reply), Code::Internal as i32, "{name} flags {flags:#x}: {reply:?}");
        }
        // Compressed JSON: gzip both ways, per message.
        let accept = [("grpc-encoding", "gzip"), ("grpc-accept-encoding", "gzip")];
        let body = http::frame(1, &gzip(json!({"responseSize": 2000}).to_string().as_bytes()));
        let reply = call(version, "POST", &unary, ct, body, &accept).await;
        assert_eq!(code(&reply), 0, "{name}: {reply:?}");
        let (flags, message) = messages(&reply).pop().expect("one message");
        let text = if flags == 1 { gunzip(&message) } else { message.to_vec() };
        let value: Value = serde_json::from_slice(&text).expect("JSON");
        assert_eq!(value["payload"]["body"].as_str().map(str::len), Some(2000usize.div_ceil(3) * 4), "{name}");
    }

    // gRPC-Web text with the JSON codec: base64 framing around JSON messages.
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let padded = b64.encode(json_frame(&json!({"responseSize": 3})));
    let ct = "application/grpc-web-text+json";
    // Padded, and unpadded (which the gRPC-Web protocol allows as well).
    for body in [padded.clone(), padded.trim_end_matches('=').to_string()] {
        let reply = call(Http::H1, "POST", &unary, ct, body.into_bytes(), &[("accept", ct)]).await;
        assert_eq!(reply.header("content-type"), Some(ct));
        let raw = http::decode_web_text(&reply.body);
        let reply = Reply { body: raw.into(), ..reply };
        assert_eq!(code(&reply), 0, "{reply:?}");
        assert_eq!(json_messages(&reply), [json!({"payload": {"body": "AAAA"}})]);
    }
}

fn sized_request(request_bytes: usize, response_size: usize) -> SimpleRequest {
    // A request whose encoding is `request_bytes` long: the payload field's overhead is
    // `Payload` (tag, length of 3 bytes, body tag, length of 3 bytes) plus `response_size`.
    let mut req = SimpleRequest {
        response_size: i32::try_from(response_size).expect("size"),
        payload: Some(Payload { r#type: 0, body: vec![] }),
        ..Default::default()
    };
    let overhead = req.encoded_len() + 6;
    req.payload = Some(Payload { r#type: 0, body: vec![0; request_bytes - overhead] });
    assert_eq!(req.encoded_len(), request_bytes, "request sizing");
    req
}

#[tokio::test]
async fn the_limit_is_on_decoded_messages_compressed_or_not_both_ways() {
    let mut config = Config::default();
    config.max_message_bytes = LIMIT;
    let server = common::start_interop(config).await;
    let url = format!("{}{TS}/UnaryCall", server.url());
    let under = LIMIT - 1024;
    for (name, version, ct) in TRANSPORTS {
        for compressed in [false, true] {
            let send = |req: SimpleRequest| {
                let bytes = req.encode_to_vec();
                if compressed { http::frame(1, &gzip(&bytes)) } else { http::frame(0, &bytes) }
            };
            let mut headers = vec![("grpc-accept-encoding", "gzip")];
            if compressed {
                headers.push(("grpc-encoding", "gzip"));
            }
            let what = format!("{name}, compressed {compressed}");
            // Requests: 1 KiB under passes, one byte over fails (zeros compress to almost
            // nothing: the decompressed size is what counts).
            let reply = call(version, "POST", &url, ct, send(sized_request(under, 1)), &headers).await;
            assert_eq!(code(&reply), 0, "{what}, request under: {reply:?}");
            let reply = call(version, "POST", &url, ct, send(sized_request(LIMIT + 1, 1)), &headers).await;
            assert_eq!(code(&reply), Code::ResourceExhausted as i32, "{what}, request over: {reply:?}");
            // Responses: the response message is a payload of zeros; the service compresses
            // it when asked, and it is measured decompressed.
            let response = |size: usize| {
                let mut req = SimpleRequest { response_size: i32::try_from(size).expect("size"), ..Default::default() };
                req.response_compressed = Some(portway::pb::grpc::testing::BoolValue { value: compressed });
                req
            };
            // A payload of n bytes encodes to n + 1 (tag) + 3 (length) + 1 (tag) + 3 (length).
            let reply = call(version, "POST", &url, ct, send(response(under - 8)), &headers).await;
            assert_eq!(code(&reply), 0, "{what}, response under: {reply:?}");
            let (flags, message) = messages(&reply).pop().expect("a response message");
            assert_eq!(flags, u8::from(compressed), "{what}: the compressed flag as asked");
            let decoded = if flags == 1 { gunzip(&message) } else { message.to_vec() };
            assert_eq!(SimpleResponse::decode(decoded.as_slice()).expect("response").encoded_len(), under);
            let reply = call(version, "POST", &url, ct, send(response(LIMIT)), &headers).await;
            assert_eq!(code(&reply), Code::ResourceExhausted as i32, "{what}, response over: {reply:?}");
            assert!(messages(&reply).is_empty(), "{what}: nothing of an oversized response is relayed");
        }
    }
}

#[tokio::test]
async fn a_gzip_bomb_is_stopped_at_the_limit() {
    let mut config = Config::default();
    config.max_message_bytes = LIMIT;
    let server = common::start_interop(config).await;
    let url = format!("{}{TS}/UnaryCall", server.url());
    // 64 MiB of zeros in about 64 KiB: within the compressed bound, a thousand times the limit.
    let bomb = gzip(&vec![0u8; 64 * 1024 * 1024]);
    assert!(bomb.len() < LIMIT, "the bomb is small on the wire");
    for (name, version, ct) in TRANSPORTS {
        let reply = call(version, "POST", &url, ct, http::frame(1, &bomb), &[("grpc-encoding", "gzip")]).await;
        assert_eq!(code(&reply), Code::ResourceExhausted as i32, "{name}: {reply:?}");
    }
}

#[tokio::test]
async fn an_encoding_the_gateway_cannot_read_is_unimplemented() {
    let server = common::start_interop(Config::default()).await;
    let url = format!("{}{TS}/UnaryCall", server.url());
    let body = http::frame(1, b"not snappy at all");
    for (name, version, ct) in TRANSPORTS {
        let reply = call(version, "POST", &url, ct, body.clone(), &[("grpc-encoding", "snappy")]).await;
        assert_eq!(code(&reply), Code::Unimplemented as i32, "{name}: {reply:?}");
        let accepted = reply.header("grpc-accept-encoding").unwrap_or_default().to_string();
        assert!(accepted.contains("gzip"), "{name}: the encodings it reads are named: {accepted:?}");
    }
}
