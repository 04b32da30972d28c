//! Frame-level HTTP/2: which frames a gRPC or gRPC-Web response is made of, read raw.
//!
//! {gRPC, gRPC-Web} × {OK, error, unknown method, deadline exceeded, over the message limit}
//! × {with `grpc-timeout`, without, without but under the server's `max_call_timeout`}:
//! a trailers-only response is exactly one HEADERS frame with END_STREAM, and no stream ends
//! with (or contains) an empty DATA frame. grpcio and grpc-js reject "HEADERS, DATA(0)+END"
//! (UNKNOWN "Stream removed" / INTERNAL), which tonic's own client accepts, so only a raw client
//! can hold the line.

mod common;

use std::fmt::Write as _;
use std::time::Duration;

use common::h2raw::{DATA, END_STREAM, H2, HEADERS, Stream, envelope};
use portway::Config;
use portway::pb::grpc::testing::{EchoStatus, Payload, SimpleRequest, StreamingInputCallRequest};
use prost::Message as _;

const TS: &str = "/grpc.testing.TestService";
const LIMIT: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    Grpc,
    GrpcWeb,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    Error,
    UnknownMethod,
    DeadlineExceeded,
    OverLimit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deadline {
    /// The request carries `grpc-timeout`.
    Header,
    /// No deadline at all.
    None,
    /// No `grpc-timeout`, but the server caps every call (`max_call_timeout`).
    ServerCap,
}

/// The request for `outcome`: path, body, and whether the client leaves its side open (the
/// deadline case waits in a client stream that never ends).
fn request(outcome: Outcome) -> (String, Vec<u8>, bool) {
    let unary = format!("{TS}/UnaryCall");
    match outcome {
        Outcome::Ok => (unary, SimpleRequest { response_size: 10, ..Default::default() }.encode_to_vec(), true),
        Outcome::Error => {
            let status = EchoStatus { code: 5, message: "no such thing".into() };
            (unary, SimpleRequest { response_status: Some(status), ..Default::default() }.encode_to_vec(), true)
        }
        Outcome::UnknownMethod => (format!("{TS}/NoSuchMethod"), Vec::new(), true),
        Outcome::DeadlineExceeded => {
            let msg = StreamingInputCallRequest {
                payload: Some(Payload { body: vec![1; 4], ..Default::default() }),
                ..Default::default()
            };
            (format!("{TS}/StreamingInputCall"), msg.encode_to_vec(), false)
        }
        Outcome::OverLimit => {
            let payload = Payload { body: vec![7; LIMIT * 2], ..Default::default() };
            (unary, SimpleRequest { payload: Some(payload), ..Default::default() }.encode_to_vec(), true)
        }
    }
}

fn expected_status(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Ok => "0",
        Outcome::Error => "5",
        Outcome::UnknownMethod => "12",
        Outcome::DeadlineExceeded => "4",
        Outcome::OverLimit => "8",
    }
}

/// One call, raw. Returns the stream's frames.
async fn call(h2: &mut H2, proto: Proto, outcome: Outcome, deadline: Deadline) -> Stream {
    let (path, message, end) = request(outcome);
    let content_type = match proto {
        Proto::Grpc => "application/grpc",
        Proto::GrpcWeb => "application/grpc-web+proto",
    };
    let mut extra = vec![("te", "trailers")];
    if deadline == Deadline::Header {
        extra.push(("grpc-timeout", if outcome == Outcome::DeadlineExceeded { "200m" } else { "5S" }));
    }
    let id = h2.next_stream_id();
    let headers = H2::post(&path, content_type, &extra);
    h2.headers(id, &headers, false).await;
    h2.data(id, &envelope(0, &message), end).await;
    h2.stream(id).await
}

/// What is wrong with `stream` as the response to `outcome`, if anything.
fn check(stream: &Stream, proto: Proto, outcome: Outcome) -> Result<(), String> {
    if stream.reset.is_some() || stream.connection_ended {
        return Err(format!("stream reset or connection ended: {}", stream.describe()));
    }
    let want = expected_status(outcome);
    // gRPC-Web carries trailers in the body; a trailers-only answer has them in the headers.
    let status = stream.last("grpc-status").map(str::to_string).or_else(|| web_trailer_status(stream));
    if status.as_deref() != Some(want) {
        return Err(format!("grpc-status {status:?}, want {want}: {}", stream.describe()));
    }
    if let Some(empty) = stream.frames.iter().find(|f| f.kind == DATA && f.payload.is_empty()) {
        return Err(format!("an empty DATA frame ({}): {}", empty.describe(), stream.describe()));
    }
    let last = stream.frames.last().ok_or("no frames")?;
    if !last.has(END_STREAM) {
        return Err(format!("the last frame has no END_STREAM: {}", stream.describe()));
    }
    if outcome == Outcome::Ok {
        let shape_ok = match proto {
            Proto::Grpc => stream.frames.len() >= 3 && last.kind == HEADERS,
            Proto::GrpcWeb => stream.frames.len() >= 2 && last.kind == DATA,
        };
        if !shape_ok || stream.frames[0].kind != HEADERS || stream.frames[0].has(END_STREAM) {
            return Err(format!("not HEADERS, DATA…, trailers: {}", stream.describe()));
        }
    } else if stream.frames.len() != 1 || last.kind != HEADERS {
        return Err(format!("not trailers-only (one HEADERS with END_STREAM): {}", stream.describe()));
    }
    Ok(())
}

/// The `grpc-status` of a gRPC-Web trailers frame (flag 0x80) in the body, if any.
fn web_trailer_status(stream: &Stream) -> Option<String> {
    let mut body = &stream.data[..];
    while body.len() >= 5 {
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        let payload = body.get(5..5 + len)?;
        if body[0] & 0x80 != 0 {
            let text = String::from_utf8_lossy(payload);
            return text.lines().find_map(|l| l.strip_prefix("grpc-status:").map(|v| v.trim().to_string()));
        }
        body = &body[5 + len..];
    }
    None
}

#[tokio::test]
async fn responses_are_framed_as_clients_expect() {
    let mut config = Config::default();
    config.max_message_bytes = LIMIT;
    let plain = common::start_interop(config.clone()).await;
    config.max_call_timeout = Some(Duration::from_millis(300));
    let capped = common::start_interop(config).await;

    let mut table = String::from("| protocol | outcome | deadline | frames | result |\n|---|---|---|---|---|\n");
    let mut failures = 0;
    for proto in [Proto::Grpc, Proto::GrpcWeb] {
        for outcome in
            [Outcome::Ok, Outcome::Error, Outcome::UnknownMethod, Outcome::DeadlineExceeded, Outcome::OverLimit]
        {
            for deadline in [Deadline::Header, Deadline::None, Deadline::ServerCap] {
                if outcome == Outcome::DeadlineExceeded && deadline == Deadline::None {
                    continue; // No deadline: nothing would ever end the call.
                }
                let server = if deadline == Deadline::ServerCap { &capped } else { &plain };
                // A connection per call, so one broken response cannot confuse the next.
                let mut h2 = H2::handshake(server.addr, &[]).await;
                let stream = call(&mut h2, proto, outcome, deadline).await;
                let result = check(&stream, proto, outcome);
                failures += usize::from(result.is_err());
                let _ = writeln!(
                    table,
                    "| {proto:?} | {outcome:?} | {deadline:?} | {} | {} |",
                    stream.describe(),
                    result.err().unwrap_or_else(|| "ok".into())
                );
            }
        }
    }
    println!("{table}");
    assert_eq!(failures, 0, "\n{table}");
}
