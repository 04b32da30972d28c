//! HTTP/1.1 early answers: a response sent before the request body was read (unsupported
//! content type, unknown method or service, a message over the limit, a deadline that passed,
//! a plain-HTTP 404/405). For each, a raw client on a tokio `TcpStream` writes part of a body,
//! waits for the status (so the status provably arrives while the client is still writing),
//! writes the rest slowly, and then either sends a second request on the same connection,
//! which must succeed, or — where the server announced `connection: close` — sees the
//! connection end cleanly after the response, and the server keep reading for as long as its
//! lingering close is set to.

mod common;

use std::time::Duration;

use common::h1raw::{self, RawResponse};
use common::http::guard;
use portway::Config;
use tokio::io::AsyncWriteExt as _;

const LIMIT: usize = 64 * 1024;
const TS: &str = "/grpc.testing.TestService";
/// A body past every case's limit (JSON text's included) and within the drain limit.
const BODY_LEN: usize = 3 * LIMIT + 32 * 1024;

/// One early answer: the request head (without framing headers), the bytes the body starts
/// with, how much of it the server reads before answering, and the status it answers.
struct Case {
    name: &'static str,
    head: String,
    prefix: Vec<u8>,
    /// Bytes to write before waiting for the answer (the server answers before the end).
    before_answer: usize,
    status: u16,
    /// For gRPC-Web answers: the `grpc-status` in the (trailers-only) headers.
    grpc_status: Option<&'static str>,
}

fn post(path: &str, content_type: &str, extra: &str) -> String {
    format!("POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: {content_type}\r\n{extra}")
}

/// A 5-byte envelope header announcing `len` payload bytes.
fn envelope(len: usize) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&(len as u32).to_be_bytes());
    out
}

fn cases(body_len: usize) -> Vec<Case> {
    let small = 16 * 1024;
    let past_limit = LIMIT + 16 * 1024;
    // JSON text has a bound of its own, past which it is refused unparsed: twice the message
    // limit plus 64 KiB (the limit itself is on the decoded message).
    let past_text_limit = 2 * LIMIT + 80 * 1024;
    vec![
        Case {
            name: "unsupported content type",
            head: post(&format!("{TS}/UnaryCall"), "text/plain", ""),
            prefix: vec![],
            before_answer: small,
            status: 415,
            grpc_status: None,
        },
        Case {
            name: "Connect JSON, unknown method",
            head: post(&format!("{TS}/NoSuchMethod"), "application/json", ""),
            prefix: vec![],
            before_answer: small,
            status: 501,
            grpc_status: None,
        },
        Case {
            name: "Connect proto, over the message limit",
            head: post("/no.such.Service/Method", "application/proto", ""),
            prefix: vec![],
            before_answer: past_limit,
            status: 429,
            grpc_status: None,
        },
        Case {
            name: "gRPC-Web, unknown method",
            head: post(&format!("{TS}/NoSuchMethod"), "application/grpc-web+proto", ""),
            prefix: envelope(body_len - 5),
            before_answer: small,
            status: 200,
            grpc_status: Some("12"),
        },
        Case {
            name: "Connect JSON, over the message limit",
            head: post(&format!("{TS}/UnaryCall"), "application/json", ""),
            prefix: vec![],
            before_answer: past_text_limit,
            status: 429,
            grpc_status: None,
        },
        Case {
            name: "Connect streaming, message over the limit",
            head: post(&format!("{TS}/StreamingInputCall"), "application/connect+json", ""),
            prefix: envelope(body_len - 5),
            before_answer: past_text_limit,
            status: 200,
            grpc_status: None,
        },
        Case {
            name: "gRPC-Web, message over the limit",
            head: post(&format!("{TS}/StreamingInputCall"), "application/grpc-web+proto", ""),
            prefix: envelope(body_len - 5),
            before_answer: past_limit,
            status: 200,
            grpc_status: Some("8"),
        },
        Case {
            name: "gRPC-Web, deadline exceeded",
            head: post(&format!("{TS}/StreamingInputCall"), "application/grpc-web+proto", "grpc-timeout: 200m\r\n"),
            // A message within the limit that is still incomplete when the deadline passes.
            prefix: envelope(LIMIT - 100),
            before_answer: small,
            status: 200,
            grpc_status: Some("4"),
        },
        Case {
            name: "Connect path, PUT",
            head: format!("PUT {TS}/UnaryCall HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"),
            prefix: vec![],
            before_answer: small,
            status: 405,
            grpc_status: None,
        },
        Case {
            name: "plain HTTP, no such file",
            head: post("/no/such/file", "text/plain", ""),
            prefix: vec![],
            before_answer: small,
            status: 404,
            grpc_status: None,
        },
        Case {
            name: "plain HTTP, method not allowed",
            head: post("/healthz", "text/plain", ""),
            prefix: vec![],
            before_answer: small,
            status: 405,
            grpc_status: None,
        },
    ]
}

/// How the body is framed and how long it is.
#[derive(Debug, Clone, Copy)]
enum Framing {
    Length(usize),
    Chunked(usize),
}

impl Framing {
    fn len(self) -> usize {
        match self {
            Framing::Length(n) | Framing::Chunked(n) => n,
        }
    }
}

/// Runs `case` with `framing`; returns the early answer and whether the connection was
/// reused (a second request answered 200) or closed after it.
async fn run(addr: std::net::SocketAddr, case: &Case, framing: Framing) -> (RawResponse, bool) {
    let (mut reader, mut write) = h1raw::connect(addr).await;
    let (framing_header, chunked) = match framing {
        Framing::Length(n) => (format!("content-length: {n}\r\n"), false),
        Framing::Chunked(_) => ("transfer-encoding: chunked\r\n".to_string(), true),
    };
    let mut start = format!("{}{framing_header}\r\n", case.head).into_bytes();
    if chunked && !case.prefix.is_empty() {
        start.extend_from_slice(format!("{:x}\r\n", case.prefix.len()).as_bytes());
        start.extend_from_slice(&case.prefix);
        start.extend_from_slice(b"\r\n");
    } else {
        start.extend_from_slice(&case.prefix);
    }
    guard(write.write_all(&start)).await.expect("write the head");
    let filler = framing.len() - case.prefix.len();
    let first = case.before_answer.min(filler);
    let pause = Duration::from_millis(2);
    // Part one, then the answer must come although the body is not complete.
    guard(h1raw::write_slowly(&mut write, first, 16 * 1024, pause, chunked, false))
        .await
        .unwrap_or_else(|sent| panic!("{}: the server stopped reading after {sent} bytes", case.name));
    let answer = guard(reader.response()).await.unwrap_or_else(|e| panic!("{}: no answer: {e}", case.name));
    // The rest, slowly. A server that announced the close may stop reading at some point
    // after its linger; one that did not must read everything.
    let rest = guard(h1raw::write_slowly(&mut write, filler - first, 32 * 1024, pause, chunked, true)).await;
    if answer.closes() {
        assert!(reader.closed().await, "{}: connection: close announced, but the connection stayed open", case.name);
        return (answer, false);
    }
    rest.unwrap_or_else(|sent| panic!("{}: keep-alive, yet the rest of the body failed after {sent} bytes", case.name));
    guard(write.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")).await.expect("second request");
    let second = guard(reader.response())
        .await
        .unwrap_or_else(|e| panic!("{}: the next request on the connection failed: {e}", case.name));
    assert_eq!(second.status, 200, "{}: second request", case.name);
    (answer, true)
}

async fn server() -> common::TestServer {
    let mut config = Config::default();
    config.max_message_bytes = LIMIT;
    common::start_interop(config).await
}

fn check(case: &Case, answer: &RawResponse) {
    assert_eq!(answer.status, case.status, "{}: {:?}", case.name, String::from_utf8_lossy(&answer.body));
    if let Some(code) = case.grpc_status {
        assert_eq!(answer.header("grpc-status"), Some(code), "{}: {:?}", case.name, answer.headers);
    }
}

#[tokio::test]
async fn short_bodies_are_drained_and_the_connection_is_reused() {
    let server = server().await;
    // Under the drain limit (256 KiB) whatever the server read before answering.
    let len = BODY_LEN;
    for case in cases(len) {
        let (answer, reused) = run(server.addr, &case, Framing::Length(len)).await;
        check(&case, &answer);
        assert!(reused, "{}: a {len}-byte body should have been drained", case.name);
    }
}

#[tokio::test]
async fn long_bodies_get_connection_close_and_the_response_arrives() {
    let server = server().await;
    let len = 2 * 1024 * 1024;
    for case in cases(len) {
        let (answer, reused) = run(server.addr, &case, Framing::Length(len)).await;
        check(&case, &answer);
        assert!(!reused && answer.closes(), "{}: a {len}-byte body is past the drain limit", case.name);
    }
}

#[tokio::test]
async fn chunked_bodies_get_connection_close() {
    let server = server().await;
    let len = BODY_LEN;
    for case in cases(len) {
        let (answer, reused) = run(server.addr, &case, Framing::Chunked(len)).await;
        check(&case, &answer);
        assert!(!reused && answer.closes(), "{}: a body of unknown length cannot be drained", case.name);
    }
}

#[tokio::test]
async fn the_drain_limit_is_configurable() {
    let mut config = Config::default();
    config.max_message_bytes = LIMIT;
    config.http.http1_max_drain_bytes = 0;
    let server = common::start_interop(config).await;
    let case = &cases(LIMIT)[0];
    let (answer, reused) = run(server.addr, case, Framing::Length(LIMIT)).await;
    check(case, &answer);
    assert!(!reused && answer.closes(), "with no drain allowance every early answer closes");
}

/// Starts an early answer that closes (a body far past the drain limit), reads it and the
/// server's FIN, then keeps writing 1 KiB every 20 ms, as a client still sending its body
/// would, until a write fails: the server has dropped the socket and its kernel answered with a
/// reset. Returns how long after the request head that was (at most `within`).
async fn lingers_for(addr: std::net::SocketAddr, within: Duration) -> Duration {
    let (mut reader, mut write) = h1raw::connect(addr).await;
    let start = tokio::time::Instant::now();
    let head = format!("{}content-length: {}\r\n\r\n", post("/healthz", "text/plain", ""), 64 * 1024 * 1024);
    guard(write.write_all(head.as_bytes())).await.expect("write the head");
    let answer = guard(reader.response()).await.expect("the early answer");
    assert!(answer.status == 405 && answer.closes(), "{answer:?}");
    // The server closes its side first, right after the response.
    assert!(reader.closed().await, "no FIN after a `connection: close` answer");
    let piece = [b'x'; 1024];
    loop {
        if write.write_all(&piece).await.is_err() {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "the server still read the body after {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `close_linger`: after its FIN the server reads and discards what the client still sends for
/// that long, then drops the socket. A short linger ends before the default (2 s) would; a
/// long one outlasts it. The margins are for scheduling delay on a loaded machine (a timer
/// fires after its deadline, never before), not a claim about speed.
#[tokio::test]
async fn the_lingering_close_lasts_as_configured() {
    let server = |linger| {
        let mut config = Config::default();
        config.http.close_linger = linger;
        common::start_interop(config)
    };
    let (short, long) = (Duration::from_millis(300), Duration::from_secs(5));
    let (short_server, long_server) = (server(short).await, server(long).await);
    let (short_took, long_took) = tokio::join!(
        lingers_for(short_server.addr, Duration::from_secs(10)),
        lingers_for(long_server.addr, Duration::from_secs(20)),
    );
    println!("linger {short:?}: writes failed after {short_took:?}; linger {long:?}: after {long_took:?}");
    assert!(short_took >= short, "the socket was dropped {short_took:?} after the request, before its linger");
    assert!(
        short_took < Duration::from_millis(1800),
        "a {short:?} linger lasted {short_took:?}, as long as the default (2 s) would"
    );
    assert!(long_took >= long, "the socket was dropped {long_took:?} after the request, before its {long:?} linger");
}
