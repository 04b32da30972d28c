//! The differential test over the JSON corpus: the codec built from run-time descriptors
//! (`transcode::dynamic`, what proxy mode and embedded services use) prints exactly the bytes
//! the generated codec prints for every message of the oracle's corpus
//! (tests/json_oracle/corpus.rs: every scalar at its edges, unknown enum numbers, oneofs,
//! maps, nesting, every well-known type), refuses what it refuses, and reads every input of
//! tests/json_oracle/inputs.rs (other spellings, `null`s, offsets, refused inputs) to the same
//! message or the same refusal. The generated codec is the one the oracle judges against
//! protobuf's reference implementation, so the dynamic codec is held to the reference too.

#[path = "json_oracle/corpus.rs"]
mod corpus;
#[path = "json_oracle/inputs.rs"]
mod inputs;

use std::sync::Arc;

use corpus::{codec_for, encode};
use portway::transcode::codec::DepthLimited;
use portway::transcode::dynamic::Schema;
use portway::transcode::{CodecError, MessageCodec};

/// The descriptor-driven codec of a corpus type, from portway's own descriptor set, limited
/// as the gateway limits every codec.
fn dynamic_for(schema: &Schema, short: &str) -> Arc<dyn MessageCodec> {
    let codec = schema.codec(&format!("portway.testing.v1.{short}")).expect("a corpus type is described");
    Arc::new(DepthLimited::new(Arc::new(codec), portway::protojson::DEFAULT_MAX_DEPTH))
}

fn text(result: Result<Vec<u8>, CodecError>) -> Result<String, String> {
    result.map(|b| String::from_utf8(b).expect("JSON is UTF-8")).map_err(|e| e.0)
}

/// Whether binaries `a` and `b` hold the same message. Their bytes may differ (the dynamic
/// codec writes fields in the order the JSON gave them, prost in field-number order), so both
/// are compared as the generated codec prints them: every field, map keys in order.
fn same_message(generated: &dyn MessageCodec, a: &[u8], b: &[u8]) -> bool {
    let (a, b) = (text(generated.binary_to_json(a)), text(generated.binary_to_json(b)));
    a.is_ok() && a == b
}

#[test]
fn every_corpus_message_prints_the_same_bytes_from_descriptors() {
    let schema = Schema::decode(portway::pb::FILE_DESCRIPTOR_SET).expect("portway's descriptors decode");
    let mut problems = Vec::new();
    let messages = corpus::messages();
    assert!(messages.len() > 30, "the corpus has {} messages", messages.len());
    for (name, message) in &messages {
        let (short, binary) = encode(message);
        let (generated, dynamic) = (codec_for(short), dynamic_for(&schema, short));
        let expected = text(generated.binary_to_json(&binary));
        let actual = text(dynamic.binary_to_json(&binary));
        match (&expected, &actual) {
            (Ok(a), Ok(b)) if a == b => {}
            // Both refuse (a Timestamp beyond year 9999, say): errors need not be worded alike.
            (Err(_), Err(_)) => {}
            _ => problems.push(format!("{name}: generated {expected:?}\n    dynamic {actual:?}")),
        }
        if let Ok(json) = expected {
            match dynamic.json_to_binary(json.as_bytes()) {
                Ok(back) if same_message(&*generated, &back, &binary) => {}
                Ok(_) => problems.push(format!("{name}: the dynamic codec reads {json} as another message")),
                Err(e) => problems.push(format!("{name}: the dynamic codec cannot read {json}: {e}")),
            }
        }
    }
    assert!(problems.is_empty(), "{} differences:\n{}", problems.len(), problems.join("\n"));
}

#[test]
fn every_corpus_input_reads_the_same_from_descriptors() {
    let schema = Schema::decode(portway::pb::FILE_DESCRIPTOR_SET).expect("portway's descriptors decode");
    let deep = "{\"child\": ".repeat(101) + "{}" + &"}".repeat(101);
    let inputs = inputs::ACCEPTED
        .iter()
        .chain(inputs::REFUSED)
        .map(|(short, json)| (*short, json.to_string()))
        .chain(inputs::STRICTER.iter().map(|(short, json, _)| (*short, json.to_string())))
        .chain([("Nested", deep)]);
    let mut problems = Vec::new();
    let mut compared = 0;
    for (short, json) in inputs {
        let (generated, dynamic) = (codec_for(short), dynamic_for(&schema, short));
        let expected = generated.json_to_binary(json.as_bytes());
        let actual = dynamic.json_to_binary(json.as_bytes());
        match (expected, actual) {
            (Ok(a), Ok(b)) if same_message(&*generated, &a, &b) => {}
            (Err(_), Err(_)) => {}
            (a, b) => problems.push(format!("{short} {json}: generated {a:?}\n    dynamic {b:?}")),
        }
        compared += 1;
    }
    assert!(compared > 60, "only {compared} inputs compared");
    assert!(problems.is_empty(), "{} differences:\n{}", problems.len(), problems.join("\n"));
}
