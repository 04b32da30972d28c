//! Run with: `cargo bench --bench dynamic_json` (timing, A B alternation), or count
//! instructions, which are steady on a busy machine:
//! `valgrind --tool=callgrind --toggle-collect='dynamic_json::measured*' target/release/deps/dynamic_json-* --count 20000 MODE`
//! with MODE `pbjson` or `dynamic`, then divide the total by the count (docs/benchmarks.md).
//!
//! The same messages through the JSON codec generated from the protos (pbjson, the fast path)
//! and through the descriptor-driven codec (from run-time descriptors: what proxy mode and
//! embedders' services use): binary → JSON (responses) and JSON → binary (requests), per call.

use std::hint::black_box;
use std::time::{Duration, Instant};

use portway::pb::grpc::testing::{
    EchoStatus, Payload, ResponseParameters, SimpleRequest, SimpleResponse, StreamingOutputCallRequest, TestOrcaReport,
};
use portway::transcode::dynamic::Schema;
use portway::transcode::{MessageCodec, MethodTable};
use prost::Message as _;

/// (type, binary message) pairs: the interop service's messages, small and with maps.
fn corpus() -> Vec<(&'static str, Vec<u8>)> {
    let request = SimpleRequest {
        response_size: 128,
        payload: Some(Payload { r#type: 0, body: vec![7; 128] }),
        fill_username: true,
        response_status: Some(EchoStatus { code: 0, message: "fine".into() }),
        orca_per_query_report: Some(TestOrcaReport {
            cpu_utilization: 0.25,
            memory_utilization: 0.5,
            request_cost: [("db".to_string(), 1.5)].into(),
            utilization: Default::default(),
        }),
        ..Default::default()
    };
    let response = SimpleResponse {
        payload: Some(Payload { r#type: 0, body: vec![0; 128] }),
        username: "someone".into(),
        server_id: "server-1".into(),
        hostname: "host".into(),
        ..Default::default()
    };
    let stream = StreamingOutputCallRequest {
        response_parameters: (1..=8).map(|size| ResponseParameters { size, ..Default::default() }).collect(),
        ..Default::default()
    };
    vec![
        ("grpc.testing.SimpleRequest", request.encode_to_vec()),
        ("grpc.testing.SimpleResponse", response.encode_to_vec()),
        ("grpc.testing.StreamingOutputCallRequest", stream.encode_to_vec()),
    ]
}

struct Codecs {
    table: MethodTable,
    dynamic: Vec<portway::transcode::dynamic::DynamicCodec>,
}

impl Codecs {
    fn new() -> Self {
        let schema = Schema::decode(portway::pb::FILE_DESCRIPTOR_SET).expect("schema");
        let dynamic = corpus().iter().map(|(t, _)| schema.codec(t).expect("described")).collect();
        Self { table: MethodTable::generated(), dynamic }
    }

    /// The generated codec of `type_name` (from the method table) or the dynamic one.
    fn get(&self, type_name: &str, dynamic: bool) -> &dyn MessageCodec {
        if dynamic {
            return self.dynamic.iter().find(|c| c.type_name() == type_name).expect("described");
        }
        self.table
            .iter()
            .flat_map(|m| [m.request(), m.response()])
            .find(|c| c.type_name() == type_name)
            .expect("generated")
    }
}

type Prepared<'a> = Vec<(&'a dyn MessageCodec, Vec<u8>, Vec<u8>)>;

/// One "call": each corpus message printed as JSON and read back.
#[inline(never)]
fn measured(codecs: &[(&dyn MessageCodec, Vec<u8>, Vec<u8>)]) {
    for (codec, binary, json) in codecs {
        black_box(codec.binary_to_json(black_box(binary)).expect("writes"));
        black_box(codec.json_to_binary(black_box(json)).expect("reads"));
    }
}

fn prepared(all: &Codecs, dynamic: bool) -> Prepared<'_> {
    corpus()
        .into_iter()
        .map(|(t, binary)| {
            let codec = all.get(t, dynamic);
            let json = codec.binary_to_json(&binary).expect("JSON");
            (codec, binary, json)
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let all = Codecs::new();
    if let Some(i) = args.iter().position(|a| a == "--count") {
        let n: u64 = args.get(i + 1).and_then(|n| n.parse().ok()).expect("--count N MODE");
        let dynamic = args.get(i + 2).map(String::as_str) == Some("dynamic");
        let codecs = prepared(&all, dynamic);
        for _ in 0..n {
            measured(&codecs);
        }
        return;
    }
    let (a, b) = (prepared(&all, true), prepared(&all, false));
    // Both print the same bytes (the differential test checks it over a corpus too).
    for ((ca, bin, ja), (_, _, jb)) in a.iter().zip(&b) {
        assert_eq!(ja, jb, "{}", ca.type_name());
        assert!(!bin.is_empty());
    }
    let quick = std::env::var_os("PORTWAY_BENCH_QUICK").is_some();
    let (rounds, per) = if quick { (1, Duration::from_millis(300)) } else { (5, Duration::from_secs(2)) };
    let sample = |codecs: &[(&dyn MessageCodec, Vec<u8>, Vec<u8>)]| {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < per {
            for _ in 0..256 {
                measured(codecs);
            }
            n += 256;
        }
        start.elapsed().as_nanos() as f64 / n as f64
    };
    sample(&a);
    sample(&b);
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        ta.push(sample(&a));
        tb.push(sample(&b));
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (ma, mb) = (median(ta), median(tb));
    println!("dynamic (descriptors): {ma:.0} ns per call (3 messages, each written and read)");
    println!("pbjson (generated):      {mb:.0} ns per call");
    println!("dynamic / pbjson:        {:.2}", ma / mb);
}
