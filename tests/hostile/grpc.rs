//! Native gRPC (HTTP/2) and gRPC-Web (binary and text, HTTP/1.1 and HTTP/2).

use super::common::http::gzip;
use super::wire::{Read, Req, b64, env, env_claiming, gzip_bomb, output, simple, simple_of_len};
use super::{LIMIT, Row, STATE, TS, common, config, h1, h2mux, judge};

/// Which HTTP versions a case runs over.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Over {
    H2,
    Both,
}

pub struct Case {
    pub name: String,
    pub read: Read,
    pub req: Req,
    pub want: &'static str,
    pub over: Over,
}

/// Runs every case over its HTTP versions; row names get ` h1` / ` h2`.
pub async fn run_cases(addr: std::net::SocketAddr, cases: Vec<Case>) -> Vec<Row> {
    let mut rows = Vec::new();
    for c in cases {
        rows.push(Row {
            name: format!("{} h2", c.name),
            want: c.want.into(),
            got: h2mux::run(addr, c.read, &c.req).await,
        });
        if c.over == Over::Both {
            let want = c.want.to_string();
            rows.push(Row { name: format!("{} h1", c.name), want, got: h1::run(addr, c.read, &c.req).await });
        }
    }
    rows
}

fn case(name: &str, read: Read, req: Req, want: &'static str, over: Over) -> Case {
    Case { name: name.to_string(), read, req, want, over }
}

const UNARY: &str = "/grpc.testing.TestService/UnaryCall";

/// Rows that frame the same way in gRPC and gRPC-Web binary: `(name, body, want)`.
fn framing_rows() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let ok = simple(1);
    let mut truncated = env(0, &ok);
    truncated[4] += 50;
    vec![
        ("ok", env(0, &ok), "grpc 0"),
        ("zero-messages-on-unary", Vec::new(), "grpc 12"),
        ("two-messages-on-unary", [env(0, &ok), env(0, &ok)].concat(), "grpc 12"),
        ("length-prefix-past-the-body", truncated, "grpc 13"),
        ("half-a-frame-header", vec![0, 0], "grpc 13"),
        ("length-prefix-4-gib", env_claiming(0, u32::MAX, &[1, 2, 3]), "grpc 8"),
        ("message-at-the-limit", env(0, &simple_of_len(LIMIT)), "grpc 0"),
        ("message-one-byte-over-the-limit", env(0, &simple_of_len(LIMIT + 1)), "grpc 8"),
        ("prefix-one-byte-over-the-limit-and-no-payload", env_claiming(0, LIMIT as u32 + 1, &[]), "grpc 8"),
        ("compressed-flag-without-grpc-encoding", env(1, &ok), "grpc 13"),
        ("reserved-flag-bits", env(0x02, &ok), "grpc 13"),
        ("not-protobuf", env(0, &[0xff, 0xff, 0xff, 0xff]), "grpc 13"),
        (
            "varint-of-eleven-bytes",
            env(0, &[0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
            "grpc 13",
        ),
        ("unknown-enum-number", env(0, &[0x08, 0x63, 0x10, 0x01]), "grpc 0"),
        ("response-size-i32-max", env(0, &simple(i32::MAX)), "grpc 8"),
        ("response-size-negative", env(0, &simple(-1)), "grpc 3"),
    ]
}

/// A `PutRequest` whose value nests `levels` lists, as raw protobuf (prost's decoder stops
/// at 100 nested messages).
fn deep_put(levels: usize) -> Vec<u8> {
    // Value { list_value (6): ListValue { values (1): Value { ... } } }, innermost null.
    let mut value: Vec<u8> = vec![0x08, 0x00];
    for _ in 0..levels {
        let list = [vec![0x0a], varint(value.len()), value].concat();
        value = [vec![0x32], varint(list.len()), list].concat();
    }
    [vec![0x0a, 0x01, b'k', 0x12], varint(value.len()), value].concat()
}

fn varint(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    prost::encoding::encode_varint(n as u64, &mut out);
    out
}

#[tokio::test]
async fn native_grpc() {
    let server = common::start_interop(config()).await;
    // A plain tonic service of the user's (no interop compression code in front of it).
    let (plain, _) = common::start_scripted(config()).await;
    let grpc = "application/grpc";
    let mut cases: Vec<Case> = framing_rows()
        .into_iter()
        .map(|(name, body, want)| {
            case(&format!("grpc/{name}"), Read::Grpc, Req::post(UNARY, grpc, body), want, Over::H2)
        })
        .collect();
    let gz = |req: Req| req.header("grpc-encoding", "gzip");
    let ok = env(0, &simple(1));
    cases.extend([
        case(
            "grpc/trickled-one-byte-per-data-frame",
            Read::Grpc,
            Req::post(UNARY, grpc, ok.clone()).trickle(),
            "grpc 0",
            Over::H2,
        ),
        case(
            "grpc/content-type-grpc+proto",
            Read::Grpc,
            Req::post(UNARY, "application/grpc+proto", ok.clone()),
            "grpc 0",
            Over::H2,
        ),
        case(
            "grpc/content-type-grpc+json",
            Read::Grpc,
            // The JSON codec reads it: a protobuf body is not JSON, so INVALID_ARGUMENT.
            Req::post(UNARY, "application/grpc+json", ok.clone()),
            "grpc 3",
            Over::H2,
        ),
        case(
            "grpc/unknown-encoding",
            Read::Grpc,
            Req::post(UNARY, grpc, env(1, &simple(1))).header("grpc-encoding", "br"),
            "grpc 12",
            Over::H2,
        ),
        case("grpc/gzip-not-gzip", Read::Grpc, gz(Req::post(UNARY, grpc, env(1, b"not gzip"))), "grpc 13", Over::H2),
        case(
            "grpc/gzip-bomb",
            Read::Grpc,
            gz(Req::post(UNARY, grpc, env(1, &gzip_bomb(20 * LIMIT)))),
            "grpc 8",
            Over::H2,
        ),
        case("grpc/gzip-ok", Read::Grpc, gz(Req::post(UNARY, grpc, env(1, &gzip(&simple(1))))), "grpc 0", Over::H2),
        case("grpc/unknown-method", Read::Grpc, Req::post(format!("{TS}/Nope"), grpc, ok.clone()), "grpc 12", Over::H2),
        case("grpc/unknown-service", Read::Grpc, Req::post("/no.Such/Thing", grpc, ok.clone()), "grpc 12", Over::H2),
        case("grpc/not-a-method-path", Read::Grpc, Req::post("/", grpc, ok.clone()), "grpc 12", Over::H2),
        case(
            "grpc/grpc-timeout-0n",
            Read::Grpc,
            Req::post(UNARY, grpc, ok.clone()).header("grpc-timeout", "0n"),
            "grpc 4",
            Over::H2,
        ),
        case(
            "grpc/grpc-timeout-malformed",
            Read::Grpc,
            Req::post(UNARY, grpc, ok.clone()).header("grpc-timeout", "1x"),
            "grpc 13",
            Over::H2,
        ),
        case(
            "grpc/grpc-timeout-nine-digits",
            Read::Grpc,
            Req::post(UNARY, grpc, ok.clone()).header("grpc-timeout", "123456789S"),
            "grpc 13",
            Over::H2,
        ),
        case(
            "grpc/grpc-timeout-huge",
            Read::Grpc,
            Req::post(UNARY, grpc, ok.clone()).header("grpc-timeout", "99999999H"),
            "grpc 0",
            Over::H2,
        ),
        case(
            "grpc/string-not-utf8",
            Read::Grpc,
            Req::post(format!("{STATE}/Get"), grpc, env(0, &[0x0a, 0x02, 0xff, 0xfe])),
            "grpc 13",
            Over::H2,
        ),
        case(
            "grpc/value-nested-200-messages",
            Read::Grpc,
            Req::post(format!("{STATE}/Put"), grpc, env(0, &deep_put(200))),
            "grpc 13",
            Over::H2,
        ),
        case(
            "grpc/streaming-truncated-last-message",
            Read::Grpc,
            Req::post(format!("{TS}/StreamingInputCall"), grpc, [env(0, &[]), vec![0, 0, 0, 0, 9, 1]].concat()),
            "grpc 13",
            Over::H2,
        ),
        case(
            "grpc/server-stream-asks-a-huge-response",
            Read::Grpc,
            Req::post(format!("{TS}/StreamingOutputCall"), grpc, env(0, &output(i32::MAX))),
            "grpc 8",
            Over::H2,
        ),
    ]);
    for method in ["GET", "PUT", "DELETE"] {
        cases.push(case(
            &format!("grpc/{method}"),
            Read::Grpc,
            Req::post(UNARY, grpc, ok.clone()).method(method),
            "http 405",
            Over::H2,
        ));
    }
    let mut rows = run_cases(server.addr, cases).await;
    // A user's service that does not accept gzip: its own UNIMPLEMENTED reaches the client,
    // nothing is inflated.
    let plain_cases = vec![case(
        "grpc/gzip-bomb-to-a-service-without-gzip",
        Read::Grpc,
        gz(Req::post(UNARY, grpc, env(1, &gzip_bomb(20 * LIMIT)))),
        "grpc 12",
        Over::H2,
    )];
    rows.extend(run_cases(plain.addr, plain_cases).await);
    judge("grpc", &rows);
}

#[tokio::test]
async fn grpc_web() {
    let server = common::start_interop(config()).await;
    let bin = "application/grpc-web+proto";
    let text = "application/grpc-web-text";
    let mut cases: Vec<Case> = framing_rows()
        .into_iter()
        .map(|(name, body, want)| {
            case(&format!("grpc-web/{name}"), Read::GrpcWeb, Req::post(UNARY, bin, body), want, Over::Both)
        })
        .collect();
    let ok = env(0, &simple(1));
    let ok_text = b64(&ok);
    cases.extend([
        case("grpc-web/trickled", Read::GrpcWeb, Req::post(UNARY, bin, ok.clone()).trickle(), "grpc 0", Over::Both),
        case(
            "grpc-web/trailer-flag-from-the-client",
            Read::GrpcWeb,
            Req::post(UNARY, bin, env(0x80, &simple(1))),
            "grpc 13",
            Over::Both,
        ),
        case(
            "grpc-web/content-type-grpc-web+json",
            Read::GrpcWeb,
            // The JSON codec reads it: a protobuf body is not JSON, so INVALID_ARGUMENT.
            Req::post(UNARY, "application/grpc-web+json", ok.clone()),
            "grpc 3",
            Over::Both,
        ),
        case(
            "grpc-web/unknown-method",
            Read::GrpcWeb,
            Req::post(format!("{TS}/Nope"), bin, ok.clone()),
            "grpc 12",
            Over::Both,
        ),
        case(
            "grpc-web/grpc-timeout-0n",
            Read::GrpcWeb,
            Req::post(UNARY, bin, ok.clone()).header("grpc-timeout", "0n"),
            "grpc 4",
            Over::Both,
        ),
        case("grpc-web-text/ok", Read::GrpcWebText, Req::post(UNARY, text, ok_text.clone()), "grpc 0", Over::Both),
        case(
            "grpc-web-text/unpadded",
            Read::GrpcWebText,
            Req::post(UNARY, text, ok_text.trim_end_matches('=')),
            "grpc 0",
            Over::Both,
        ),
        case(
            "grpc-web-text/not-base64",
            Read::GrpcWebText,
            Req::post(UNARY, text, "!!!not base64!!!"),
            "grpc 13",
            Over::Both,
        ),
        case(
            "grpc-web-text/line-breaks",
            Read::GrpcWebText,
            Req::post(UNARY, text, format!("{}\r\n{}", &ok_text[..4], &ok_text[4..])),
            "grpc 13",
            Over::Both,
        ),
        case(
            "grpc-web-text/trickled",
            Read::GrpcWebText,
            Req::post(UNARY, text, ok_text.clone()).trickle(),
            "grpc 0",
            Over::Both,
        ),
        case(
            "grpc-web-text/two-padded-segments",
            Read::GrpcWebText,
            Req::post(format!("{TS}/StreamingInputCall"), text, format!("{}{}", b64(&env(0, &[])), b64(&env(0, &[])))),
            "grpc 0",
            Over::Both,
        ),
        case(
            "grpc-web-text/length-prefix-4-gib",
            Read::GrpcWebText,
            Req::post(UNARY, text, b64(&env_claiming(0, u32::MAX, &[1, 2, 3]))),
            "grpc 8",
            Over::Both,
        ),
        case(
            "grpc-web-text/truncated",
            Read::GrpcWebText,
            Req::post(UNARY, text, b64(&ok[..ok.len() - 1])),
            "grpc 13",
            Over::Both,
        ),
    ]);
    let rows = run_cases(server.addr, cases).await;
    judge("grpc-web", &rows);
}
