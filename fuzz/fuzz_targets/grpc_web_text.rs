//! gRPC-Web text bodies (base64, the gateway's streaming decoder in src/protocol/grpc/text.rs)
//! through the whole gateway, cut into chunks anywhere: every call ends, with HTTP 200 and a
//! `grpc-status` (trailers-only, or in the base64 trailer frame of the body).
#![no_main]

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;

const METHODS: [&str; 3] = [
    "/grpc.testing.TestService/UnaryCall",
    "/grpc.testing.TestService/StreamingInputCall",
    "/grpc.health.v1.Health/Check",
];

// Input: the method (1 byte), whether to base64-encode the body first (1 byte, odd: yes, so
// that the envelopes inside get fuzzed too), then the cuts and the body.
fuzz_target!(|data: &[u8]| {
    let Some(input) = portway_fuzz::Input::parse(data, 2) else { return };
    let path = METHODS[usize::from(input.head[0]) % METHODS.len()];
    let body = if input.head[1] & 1 == 1 {
        base64::engine::general_purpose::STANDARD.encode(input.raw_body).into_bytes()
    } else {
        input.raw_body.to_vec()
    };
    let cuts: Vec<u8> = input.body.iter().map(|c| u8::try_from(c.len()).unwrap_or(0)).collect();
    let req = http::Request::post(path)
        .header("content-type", "application/grpc-web-text")
        .header("accept", "application/grpc-web-text")
        .header("grpc-timeout", "100m");
    let reply = portway_fuzz::call(req, portway_fuzz::chunks(&cuts, &body));
    assert_eq!(reply.status, http::StatusCode::OK);
    if reply.headers.contains_key("grpc-status") {
        return;
    }
    let text: Vec<u8> = reply.body.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
    let mut raw = Vec::new();
    for quad in text.chunks(4) {
        raw.extend(base64::engine::general_purpose::STANDARD.decode(quad).expect("the response is base64"));
    }
    let has_trailers = raw.windows(11).any(|w| w == b"grpc-status");
    assert!(has_trailers, "a grpc-web-text response without grpc-status");
});
