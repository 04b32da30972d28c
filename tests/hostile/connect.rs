//! Connect: unary JSON and proto, unary `GET`, streaming; HTTP/1.1 and HTTP/2. Also the
//! JSON rows (wrong types, unknown enums, numbers, nesting), since Connect is where JSON
//! meets HTTP most directly; the WebSocket table repeats the ones that matter there.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::common::http::gzip;
use super::grpc::{Case, Over, run_cases};
use super::wire::{Read, Req, env, env_claiming, nested, simple};
use super::{LIMIT, Row, STATE, TS, common, config, judge};

const UNARY: &str = "/grpc.testing.TestService/UnaryCall";
const JSON: &str = "application/json";

fn case(name: &str, read: Read, req: Req, want: &'static str) -> Case {
    Case { name: name.to_string(), read, req, want, over: Over::Both }
}

/// JSON request bodies for `UnaryCall` and what each gets: `(name, body, want)`.
pub fn json_rows() -> Vec<(&'static str, String, &'static str)> {
    let ok = "connect 200 ok";
    let bad = "connect 400 invalid_argument";
    vec![
        ("ok", r#"{"responseSize":1}"#.into(), ok),
        ("proto-field-names", r#"{"response_size":1}"#.into(), ok),
        ("empty-body", String::new(), ok),
        ("not-json", "not json".into(), bad),
        ("cut-short", r#"{"responseSize":"#.into(), bad),
        ("trailing-garbage", r#"{} {}"#.into(), bad),
        ("trailing-comma", r#"{"responseSize":1,}"#.into(), bad),
        ("array-not-object", "[]".into(), bad),
        ("string-for-an-int", r#"{"responseSize":"abc"}"#.into(), bad),
        ("quoted-int", r#"{"responseSize":"5"}"#.into(), ok),
        ("object-for-an-int", r#"{"responseSize":{}}"#.into(), bad),
        ("number-for-a-message", r#"{"payload":5}"#.into(), bad),
        ("string-for-a-bool", r#"{"fillUsername":"true"}"#.into(), bad),
        ("null-field", r#"{"responseSize":null,"payload":null}"#.into(), ok),
        ("unknown-field", r#"{"noSuchField":[1,{"a":2}]}"#.into(), ok),
        ("duplicate-field", r#"{"responseSize":1,"responseSize":2}"#.into(), bad),
        ("unknown-enum-name", r#"{"responseType":"NO_SUCH_TYPE"}"#.into(), bad),
        ("unknown-enum-number", r#"{"responseType":7}"#.into(), ok),
        ("exponent-for-an-int", r#"{"responseSize":1e2}"#.into(), ok),
        ("fraction-for-an-int", r#"{"responseSize":1.5}"#.into(), bad),
        ("int32-overflow", r#"{"responseSize":2147483648}"#.into(), bad),
        ("int32-underflow", r#"{"responseSize":-2147483649}"#.into(), bad),
        ("number-1e400", r#"{"responseSize":1e400}"#.into(), bad),
        ("number-of-400-digits", format!(r#"{{"responseSize":{}}}"#, "9".repeat(400)), bad),
        ("bytes-not-base64", r#"{"payload":{"body":"!!"}}"#.into(), bad),
        ("bytes-unpadded-base64", r#"{"payload":{"body":"AAA"}}"#.into(), ok),
        ("escaped-lone-surrogate", r#"{"responseStatus":{"message":"\ud800"}}"#.into(), bad),
        ("nested-64-levels", format!(r#"{{"x":{}}}"#, nested(63)), ok),
        ("nested-65-levels-in-an-unknown-field", format!(r#"{{"x":{}}}"#, nested(64)), bad),
        ("nested-200-levels", format!(r#"{{"x":{}}}"#, nested(200)), bad),
        ("nested-5000-levels", format!(r#"{{"x":{}}}"#, nested(5000)), bad),
    ]
}

#[tokio::test]
async fn connect_unary() {
    let server = common::start_interop(config()).await;
    let mut cases: Vec<Case> = json_rows()
        .into_iter()
        .map(|(name, body, want)| {
            case(&format!("connect/json-{name}"), Read::Connect, Req::post(UNARY, JSON, body), want)
        })
        .collect();
    let ok = r#"{"responseSize":1}"#;
    // 2 × LIMIT base64 characters: 1.5 × LIMIT bytes once decoded, over the (decoded) limit.
    let big = format!(r#"{{"payload":{{"body":"{}"}}}}"#, "A".repeat(2 * LIMIT));
    let bomb = format!(r#"{{"payload":{{"body":"{}"}}}}"#, "A".repeat(20 * LIMIT));
    let post = |body: &[u8]| Req::post(UNARY, JSON, body.to_vec());
    cases.extend([
        case(
            "connect/json-invalid-utf8",
            Read::Connect,
            post(b"{\"payload\":{\"body\":\"\xff\xfe\"}}"),
            "connect 400 invalid_argument",
        ),
        case("connect/json-byte-order-mark", Read::Connect, post(b"\xef\xbb\xbf{}"), "connect 400 invalid_argument"),
        case("connect/json-trickled", Read::Connect, post(ok.as_bytes()).trickle(), "connect 200 ok"),
        case("connect/json-body-over-the-limit", Read::Connect, post(big.as_bytes()), "connect 429 resource_exhausted"),
        case(
            "connect/gzip-bomb",
            Read::Connect,
            post(&gzip(bomb.as_bytes())).header("content-encoding", "gzip"),
            "connect 429 resource_exhausted",
        ),
        case(
            "connect/gzip-not-gzip",
            Read::Connect,
            post(b"not gzip").header("content-encoding", "gzip"),
            "connect 400 invalid_argument",
        ),
        case(
            "connect/unknown-content-encoding",
            Read::Connect,
            post(ok.as_bytes()).header("content-encoding", "br"),
            "connect 501 unimplemented",
        ),
        case(
            "connect/protocol-version-2",
            Read::Connect,
            post(ok.as_bytes()).header("connect-protocol-version", "2"),
            "connect 400 invalid_argument",
        ),
        case(
            "connect/timeout-not-a-number",
            Read::Connect,
            post(ok.as_bytes()).header("connect-timeout-ms", "abc"),
            "connect 400 invalid_argument",
        ),
        case(
            "connect/timeout-eleven-digits",
            Read::Connect,
            post(ok.as_bytes()).header("connect-timeout-ms", "12345678901"),
            "connect 400 invalid_argument",
        ),
        case(
            "connect/timeout-zero",
            Read::Connect,
            post(ok.as_bytes()).header("connect-timeout-ms", "0"),
            "connect 504 deadline_exceeded",
        ),
        case(
            "connect/unknown-method",
            Read::Connect,
            Req::post(format!("{TS}/Nope"), JSON, ok),
            "connect 501 unimplemented",
        ),
        case(
            "connect/unknown-service",
            Read::Connect,
            Req::post("/no.Such/Thing", JSON, ok),
            "connect 501 unimplemented",
        ),
        case(
            "connect/streaming-method-as-unary",
            Read::Connect,
            Req::post(format!("{TS}/StreamingOutputCall"), JSON, ok),
            "connect 415 unimplemented",
        ),
        case(
            "connect/int64-out-of-range",
            Read::Connect,
            Req::post(format!("{STATE}/Get"), JSON, r#"{"key":"k","revision":"99999999999999999999"}"#),
            "connect 400 invalid_argument",
        ),
        case(
            "connect/state-value-nested-40-levels",
            Read::Connect,
            Req::post(format!("{STATE}/Put"), JSON, format!(r#"{{"key":"k","value":{}}}"#, nested(40))),
            "connect 400 invalid_argument",
        ),
        case(
            "connect/proto-not-protobuf",
            Read::Connect,
            Req::post(UNARY, "application/proto", vec![0xff, 0xff, 0xff]),
            "connect 500 internal",
        ),
        case(
            "connect/proto-two-messages-merge",
            Read::Connect,
            Req::post(UNARY, "application/proto", [simple(1), simple(2)].concat()),
            "connect 200 ok",
        ),
        case(
            "connect/proto-unknown-method",
            Read::Connect,
            Req::post(format!("{TS}/Nope"), "application/proto", vec![]),
            "connect 501 unimplemented",
        ),
        case(
            "connect/content-type-text-plain",
            Read::Connect,
            Req::post(UNARY, "text/plain", ok),
            "connect 415 (no error object)",
        ),
        case("connect/no-content-type", Read::Connect, Req::post(UNARY, "", ok), "connect 415 (no error object)"),
    ]);
    for method in ["PUT", "PATCH", "DELETE", "TRACE", "BREW"] {
        cases.push(case(
            &format!("connect/method-{method}"),
            Read::Connect,
            Req::post(UNARY, JSON, ok).method(method),
            "connect 405 (no error object)",
        ));
    }
    let rows = run_cases(server.addr, cases).await;
    judge("connect", &rows);
}

#[tokio::test]
async fn connect_get() {
    let server = common::start_interop(config()).await;
    let path = "/grpc.testing.TestService/CacheableUnaryCall";
    let get = |query: &str| Req::get(format!("{path}?{query}"));
    let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    let cases = vec![
        case("connect-get/ok", Read::Connect, get("encoding=json&message=%7B%7D"), "connect 200 ok"),
        case("connect-get/no-message", Read::Connect, get("encoding=json"), "connect 200 ok"),
        case(
            "connect-get/encoding-xml",
            Read::Connect,
            get("encoding=xml&message=%7B%7D"),
            "connect 400 invalid_argument",
        ),
        case(
            "connect-get/invalid-json",
            Read::Connect,
            get("encoding=json&message=%7B"),
            "connect 400 invalid_argument",
        ),
        case(
            "connect-get/bad-percent-encoding",
            Read::Connect,
            get("encoding=json&message=%zz"),
            "connect 400 invalid_argument",
        ),
        case(
            "connect-get/base64-invalid",
            Read::Connect,
            get("encoding=proto&base64=1&message=!!!"),
            "connect 400 invalid_argument",
        ),
        case(
            "connect-get/base64-padded",
            Read::Connect,
            get(&format!("encoding=proto&base64=1&message={}%3D", b64(&simple(1)))),
            "connect 200 ok",
        ),
        case(
            "connect-get/base64-unpadded",
            Read::Connect,
            get(&format!("encoding=proto&base64=1&message={}", b64(&simple(1)))),
            "connect 200 ok",
        ),
        case(
            "connect-get/compression-br",
            Read::Connect,
            get("encoding=json&message=%7B%7D&compression=br"),
            "connect 501 unimplemented",
        ),
        case(
            "connect-get/gzip-bomb",
            Read::Connect,
            get(&format!(
                "encoding=json&base64=1&compression=gzip&message={}",
                b64(&gzip(format!(r#"{{"payload":{{"body":"{}"}}}}"#, "A".repeat(20 * LIMIT)).as_bytes()))
            )),
            "connect 429 resource_exhausted",
        ),
        case(
            "connect-get/connect-v2",
            Read::Connect,
            get("encoding=json&message=%7B%7D&connect=v2"),
            "connect 400 invalid_argument",
        ),
        case(
            "connect-get/method-with-side-effects",
            Read::Connect,
            Req::get(format!("{UNARY}?encoding=json&message=%7B%7D")),
            "connect 405 unimplemented",
        ),
        case(
            "connect-get/streaming-method",
            Read::Connect,
            Req::get(format!("{TS}/StreamingOutputCall?encoding=json&message=%7B%7D")),
            "connect 415 unimplemented",
        ),
        case(
            "connect-get/unknown-method",
            Read::Connect,
            Req::get(format!("{TS}/Nope?encoding=json&message=%7B%7D")),
            "connect 501 unimplemented",
        ),
    ];
    let mut cases = cases;
    // Over the header limit: hyper answers 431 and, on HTTP/1.1, closes.
    let huge = get(&format!("encoding=json&message={}", "a".repeat(20 * 1024)));
    let over = |want, over| Case {
        name: "connect-get/message-over-the-header-limit".into(),
        read: Read::Connect,
        req: huge.clone(),
        want,
        over,
    };
    cases.push(over("connect 431 (no error object)", Over::H2));
    let mut rows = run_cases(server.addr, cases).await;
    let h1 = over("connect 431 (no error object) +close", Over::Both);
    rows.push(Row {
        name: format!("{} h1", h1.name),
        want: h1.want.into(),
        got: super::h1::run(server.addr, h1.read, &h1.req).await,
    });
    judge("connect-get", &rows);
}

#[tokio::test]
async fn connect_streaming() {
    let server = common::start_interop(config()).await;
    let out = format!("{TS}/StreamingOutputCall");
    let input = format!("{TS}/StreamingInputCall");
    let ct = "application/connect+json";
    let ok = br#"{"responseParameters":[{"size":1}]}"#;
    let mut truncated = env(0, ok);
    truncated.truncate(truncated.len() - 3);
    let bomb = gzip(format!(r#"{{"payload":{{"body":"{}"}}}}"#, "A".repeat(20 * LIMIT)).as_bytes());
    let s = |path: &str, body: Vec<u8>| Req::post(path, ct, body);
    let cases = vec![
        case("connect-stream/ok", Read::ConnectStream, s(&out, env(0, ok)), "end ok"),
        case("connect-stream/trickled", Read::ConnectStream, s(&out, env(0, ok)).trickle(), "end ok"),
        case(
            "connect-stream/zero-messages-to-a-server-stream",
            Read::ConnectStream,
            s(&out, Vec::new()),
            "end unimplemented",
        ),
        case(
            "connect-stream/two-messages-to-a-server-stream",
            Read::ConnectStream,
            s(&out, [env(0, ok), env(0, ok)].concat()),
            "end unimplemented",
        ),
        case(
            "connect-stream/truncated-envelope",
            Read::ConnectStream,
            s(&out, truncated.clone()),
            "end invalid_argument",
        ),
        case(
            "connect-stream/half-an-envelope-header",
            Read::ConnectStream,
            s(&out, vec![0, 0]),
            "end invalid_argument",
        ),
        case(
            "connect-stream/length-prefix-4-gib",
            Read::ConnectStream,
            s(&out, env_claiming(0, u32::MAX, b"{}")),
            "end resource_exhausted",
        ),
        case(
            "connect-stream/end-stream-flag-from-the-client",
            Read::ConnectStream,
            s(&out, env(2, b"{}")),
            "end invalid_argument",
        ),
        case("connect-stream/unknown-flag-bits", Read::ConnectStream, s(&out, env(0x04, ok)), "end invalid_argument"),
        case(
            "connect-stream/compressed-flag-without-encoding",
            Read::ConnectStream,
            s(&out, env(1, ok)),
            "end internal",
        ),
        case(
            "connect-stream/unknown-encoding",
            Read::ConnectStream,
            s(&out, env(0, ok)).header("connect-content-encoding", "br"),
            "end unimplemented",
        ),
        case(
            "connect-stream/gzip-bomb",
            Read::ConnectStream,
            s(&input, env(1, &bomb)).header("connect-content-encoding", "gzip"),
            "end resource_exhausted",
        ),
        case("connect-stream/not-json", Read::ConnectStream, s(&out, env(0, b"{broken")), "end invalid_argument"),
        case(
            "connect-stream/second-message-bad",
            Read::ConnectStream,
            s(&input, [env(0, b"{}"), env(0, br#"{"payload":7}"#)].concat()),
            "end invalid_argument",
        ),
        case(
            "connect-stream/client-stream-truncated",
            Read::ConnectStream,
            s(&input, [env(0, b"{}"), truncated].concat()),
            "end invalid_argument",
        ),
        case("connect-stream/unary-method", Read::ConnectStream, s(UNARY, env(0, b"{}")), "http 415 unimplemented"),
        case(
            "connect-stream/proto-not-protobuf",
            Read::ConnectStream,
            Req::post(&out, "application/connect+proto", env(0, &[0xff, 0xff])),
            "end internal",
        ),
    ];
    let rows = run_cases(server.addr, cases).await;
    judge("connect-stream", &rows);
}
