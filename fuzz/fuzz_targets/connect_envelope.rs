//! Connect streaming request bodies (the envelope reader: flags, lengths, gzip, JSON or
//! binary messages) through the whole gateway: whatever the bytes, every call ends with
//! HTTP 200 and a body of whole envelopes ending with the end-of-stream one.
#![no_main]

use libfuzzer_sys::fuzz_target;

const METHODS: [&str; 4] = [
    "/grpc.testing.TestService/StreamingInputCall",
    "/grpc.testing.TestService/StreamingOutputCall",
    "/grpc.testing.TestService/FullDuplexCall",
    "/portway.state.v1.StateService/Watch",
];

// Input: the method (1 byte), flags (1 byte: 1 JSON, 2 gzip), then the cuts and the body.
fuzz_target!(|data: &[u8]| {
    let Some(input) = portway_fuzz::Input::parse(data, 2) else { return };
    let path = METHODS[usize::from(input.head[0]) % METHODS.len()];
    let (json, gzip) = (input.head[1] & 1 != 0, input.head[1] & 2 != 0);
    let mut req = http::Request::post(path)
        .header("content-type", if json { "application/connect+json" } else { "application/connect+proto" })
        .header("connect-timeout-ms", "100");
    if gzip {
        req = req.header("connect-content-encoding", "gzip");
    }
    let reply = portway_fuzz::call(req, input.body);
    assert_eq!(reply.status, http::StatusCode::OK, "{}", String::from_utf8_lossy(&reply.body));
    let mut body = &reply.body[..];
    let mut last_flags = None;
    while !body.is_empty() {
        assert!(body.len() >= 5, "a cut envelope header");
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        assert!(body.len() >= 5 + len, "a cut envelope");
        assert!(last_flags != Some(2), "an envelope after the end-of-stream one");
        last_flags = Some(body[0]);
        if body[0] == 2 {
            serde_json::from_slice::<serde_json::Value>(&body[5..5 + len]).expect("end-of-stream JSON");
        }
        body = &body[5 + len..];
    }
    assert_eq!(last_flags, Some(2), "no end-of-stream envelope");
});
