//! The JSON oracle: protobuf's reference implementation of the canonical JSON mapping
//! (Python `google.protobuf.json_format`, pinned in tests/json_oracle/requirements.txt) judges
//! portway's JSON codec on the corpus in tests/json_oracle/corpus.rs and inputs.rs:
//!
//! - every JSON portway writes, the reference reads to the same message; portway reads it
//!   back to the same message too; the reference's own JSON for the message is the same text,
//!   up to the differences the mapping allows (member order, the spelling of a number), and
//!   portway reads it to the same message;
//! - inputs the mapping allows in other spellings (`1e2` for an integer, `null`, unknown enum
//!   numbers, offsets in timestamps, either field name, either base64 alphabet …) both read
//!   to the same message; inputs it refuses, both refuse; a few that portway refuses on
//!   purpose and the reference takes are listed with the reason (`inputs::STRICTER`).
//!
//! Needs `python3` with that `protobuf` (.ci/run installs it into tests/json_oracle/.venv,
//! which the test prefers; `PORTWAY_ORACLE_PYTHON` overrides). Without it the test says so and
//! passes, except under `CI=true`, where it fails.

#[path = "json_oracle/corpus.rs"]
mod corpus;
#[path = "json_oracle/inputs.rs"]
mod inputs;

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use corpus::{codec_for, encode};
use serde_json::json;

const PACKAGE: &str = "portway.testing.v1";
const CORPUS_FILE: &str = "portway/testing/v1/corpus.proto";

/// The Python to run, and whether it has the pinned protobuf.
fn python() -> Option<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let venv = root.join("tests/json_oracle/.venv/bin/python3");
    let candidates: Vec<PathBuf> = match std::env::var_os("PORTWAY_ORACLE_PYTHON") {
        Some(p) => vec![p.into()],
        None => vec![venv, "python3".into()],
    };
    for python in candidates {
        let probe = Command::new(&python)
            .args(["-c", "import google.protobuf, sys; sys.stdout.write(google.protobuf.__version__)"])
            .output();
        if let Ok(out) = probe
            && out.status.success()
        {
            return Some((python, String::from_utf8_lossy(&out.stdout).into_owned()));
        }
    }
    None
}

fn pinned_version() -> String {
    let requirements = include_str!("json_oracle/requirements.txt");
    requirements
        .lines()
        .find_map(|l| l.trim().strip_prefix("protobuf=="))
        .expect("requirements.txt pins protobuf")
        .trim()
        .to_string()
}

#[test]
fn the_reference_implementation_agrees_with_portway() {
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let Some((python, version)) = python() else {
        assert!(!in_ci, "the JSON oracle needs python3 with protobuf (tests/json_oracle/requirements.txt)");
        eprintln!("SKIPPED: no python3 with protobuf; pip install -r tests/json_oracle/requirements.txt");
        return;
    };
    let pinned = pinned_version();
    assert!(!in_ci || version == pinned, "the oracle runs protobuf {version}, but {pinned} is pinned");

    let b64 = base64::engine::general_purpose::STANDARD;
    let mut problems = Vec::new();
    let mut cases = Vec::new();
    // What portway writes: the reference must read it; portway must read it back.
    let mut printed = Vec::new();
    for (name, message) in corpus::messages() {
        let (short, binary) = encode(&message);
        let codec = codec_for(short);
        let json = match codec.binary_to_json(&binary) {
            Ok(json) => String::from_utf8(json).expect("UTF-8"),
            Err(e) => {
                problems.push(format!("{name}: portway cannot write it: {e}"));
                continue;
            }
        };
        match codec.json_to_binary(json.as_bytes()) {
            // Both are prost's encoding of a message (maps in key order): equal bytes, equal messages.
            Ok(back) if back == binary => {}
            Ok(_) => problems.push(format!("{name}: portway reads its own {json} as another message")),
            Err(e) => problems.push(format!("{name}: portway cannot read its own {json}: {e}")),
        }
        cases.push(json!({"id": name, "kind": "print", "type": format!("{PACKAGE}.{short}"),
                          "json": json, "binary": b64.encode(&binary)}));
        printed.push((name, short, binary));
    }
    // Other spellings the mapping allows: both read them, to the same message.
    for (i, (short, input)) in inputs::ACCEPTED.iter().enumerate() {
        let id = format!("accept {i}: {short} {input}");
        match codec_for(short).json_to_binary(input.as_bytes()) {
            Ok(binary) => cases.push(json!({"id": id, "kind": "accept", "type": format!("{PACKAGE}.{short}"),
                                            "json": input, "binary": b64.encode(&binary)})),
            Err(e) => problems.push(format!("{id}: portway refuses it: {e}")),
        }
    }
    // What the mapping refuses (and nesting beyond both limits): both refuse it.
    let deep = "{\"child\": ".repeat(101) + "{}" + &"}".repeat(101);
    let refused = inputs::REFUSED.iter().map(|(s, j)| (*s, j.to_string())).chain([("Nested", deep)]);
    for (i, (short, input)) in refused.enumerate() {
        let id = format!("refuse {i}: {short} {}", input.chars().take(80).collect::<String>());
        match codec_for(short).json_to_binary(input.as_bytes()) {
            Err(_) => cases.push(json!({"id": id, "kind": "refuse", "type": format!("{PACKAGE}.{short}"),
                                        "json": input})),
            Ok(_) => problems.push(format!("{id}: portway accepts it")),
        }
    }

    // Refused by portway on purpose, taken by the reference: listed with the reason.
    for (i, (short, input, why)) in inputs::STRICTER.iter().enumerate() {
        let id = format!("stricter {i}: {short} {input} ({why})");
        match codec_for(short).json_to_binary(input.as_bytes()) {
            Err(_) => cases.push(json!({"id": id, "kind": "stricter", "type": format!("{PACKAGE}.{short}"),
                                        "json": input})),
            Ok(_) => problems.push(format!("{id}: portway accepts it")),
        }
    }

    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("descriptors.bin"), portway::pb::FILE_DESCRIPTOR_SET).expect("write");
    let request = json!({"files": [CORPUS_FILE], "cases": cases});
    std::fs::write(dir.path().join("cases.json"), request.to_string()).expect("write");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/json_oracle/oracle.py");
    let run = Command::new(&python).arg(&script).arg(dir.path()).output().expect("runs python");
    assert!(run.status.success(), "oracle.py failed: {}", String::from_utf8_lossy(&run.stderr));
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("results.json")).expect("results")).expect("JSON");

    let mut notes = std::collections::BTreeMap::<String, Vec<String>>::new();
    for result in results["results"].as_array().expect("results") {
        let id = result["id"].as_str().expect("id");
        if let Some(problem) = result["problem"].as_str() {
            problems.push(format!("{id}: {problem}"));
        }
        for note in result["notes"].as_array().into_iter().flatten() {
            notes.entry(note.as_str().expect("note").to_string()).or_default().push(id.to_string());
        }
        // What the reference writes, portway must read to the same message.
        if let Some(theirs) = result["reference_json"].as_str() {
            let (_, short, binary) = printed.iter().find(|(name, ..)| *name == id).expect("a printed case");
            let codec = codec_for(short);
            match codec.json_to_binary(theirs.as_bytes()) {
                Ok(back) if back == *binary => {}
                Ok(_) => problems.push(format!("{id}: portway reads the reference's {theirs} as another message")),
                Err(e) => problems.push(format!("{id}: portway cannot read the reference's {theirs}: {e}")),
            }
        }
    }
    let total = results["results"].as_array().map_or(0, Vec::len);
    eprintln!("JSON oracle: protobuf {} judged {total} cases", results["protobuf"]);
    for (note, ids) in &notes {
        eprintln!("  allowed difference \"{note}\" in {} cases: {}", ids.len(), ids.join("; "));
    }
    assert_eq!(total, cases.len(), "the oracle judged every case");
    assert!(problems.is_empty(), "{} disagreements:\n{}", problems.len(), problems.join("\n"));
}
