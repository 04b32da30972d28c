//! The JSON transcoder: the generated codecs of representative methods (scalars, enums,
//! bytes, nested messages, `google.protobuf.Value`, timestamps), both directions.
//! JSON that a codec accepts must come back from its binary form as JSON that reads the
//! same, and that JSON must be accepted again; any binary input must be refused or printed,
//! never panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use portway::transcode::{MessageCodec, MethodTable};

const PATHS: [&str; 6] = [
    "/grpc.testing.TestService/UnaryCall",
    "/grpc.testing.TestService/StreamingOutputCall",
    "/portway.state.v1.StateService/Put",
    "/portway.state.v1.StateService/Txn",
    "/portway.state.v1.StateService/Watch",
    "/grpc.health.v1.Health/Check",
];

fn codecs() -> &'static Vec<(&'static dyn MessageCodec, &'static dyn MessageCodec)> {
    static CODECS: OnceLock<Vec<(&'static dyn MessageCodec, &'static dyn MessageCodec)>> = OnceLock::new();
    CODECS.get_or_init(|| {
        let table: &'static MethodTable = Box::leak(Box::new(MethodTable::generated()));
        PATHS.iter().map(|p| table.get(p).expect("a generated method")).map(|m| (m.request(), m.response())).collect()
    })
}

// Input: the method (1 byte), request or response (1 byte, odd: response), then JSON (or
// binary) bytes.
fuzz_target!(|input: &[u8]| {
    let [pick, direction, data @ ..] = input else { return };
    let (pick, response) = (*pick, direction & 1 == 1);
    let (req, resp) = codecs()[usize::from(pick) % PATHS.len()];
    let codec = if response { resp } else { req };
    if let Ok(binary) = codec.json_to_binary(data) {
        let json = codec.binary_to_json(&binary).expect("what the codec accepted prints");
        let again = codec.json_to_binary(&json).expect("what the codec printed is accepted");
        let json2 = codec.binary_to_json(&again).expect("prints again");
        let (a, b): (serde_json::Value, serde_json::Value) =
            (serde_json::from_slice(&json).expect("JSON"), serde_json::from_slice(&json2).expect("JSON"));
        assert_eq!(a, b, "the printed JSON does not read back the same");
    }
    let _ = codec.binary_to_json(data);
});
