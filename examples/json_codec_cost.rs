//! Run with: `cargo build --release --example json_codec_cost` and then
//! `valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/json_codec_cost N unary`
//! (or `embedding`) for N = 0 and N = 2000: the difference over 2,000 is the JSON codec's
//! instructions per call (docs/benchmarks.md, "JSON codec").
//!
//! `unary` is the JSON half of a Connect unary call of the benchmark (a `SimpleRequest` read,
//! a `SimpleResponse` with a 128-byte payload written); `embedding` reads and writes a
//! `PutRequest` holding 768 numbers. Both go through the method table as the gateway builds it.

use portway::transcode::MethodTable;
use prost::Message as _;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(0);
    let which = args.next().unwrap_or_default();
    let mut table = MethodTable::generated();
    table.limit_json_depth(portway::protojson::DEFAULT_MAX_DEPTH);
    let (Some(unary), Some(put)) =
        (table.get("/grpc.testing.TestService/UnaryCall"), table.get("/portway.state.v1.StateService/Put"))
    else {
        eprintln!("the generated method table lacks the benchmark's methods");
        std::process::exit(1);
    };
    let request = format!(r#"{{"responseSize":128,"payload":{{"body":"{}=="}}}}"#, "A".repeat(170));
    let payload = portway::pb::grpc::testing::Payload { r#type: 0, body: vec![7; 128] };
    let response = portway::pb::grpc::testing::SimpleResponse { payload: Some(payload), ..Default::default() };
    let response = response.encode_to_vec();
    let numbers: Vec<String> = (0..768).map(|i| format!("{}", f64::from(i) * 0.001234 - 0.5)).collect();
    let embedding = format!(r#"{{"key":"emb/1","value":[{}]}}"#, numbers.join(","));
    let embedding_binary = put.request().json_to_binary(embedding.as_bytes()).expect("a valid PutRequest");
    let mut bytes = 0usize;
    for _ in 0..n {
        let (a, b) = match which.as_str() {
            "unary" => (unary.request().json_to_binary(request.as_bytes()), unary.response().binary_to_json(&response)),
            "embedding" => {
                (put.request().json_to_binary(embedding.as_bytes()), put.request().binary_to_json(&embedding_binary))
            }
            _ => break,
        };
        bytes += a.expect("reads").len() + b.expect("writes").len();
    }
    println!("{bytes} bytes");
}
