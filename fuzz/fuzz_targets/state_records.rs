//! The state store's start-up: log records, live entries and Sync outcomes as the durable
//! backend reads them back, decoded by the backend's own decoder, then the committed state
//! built from them and read as clients would. A damaged or hostile record must be skipped
//! and reported, never panic, and never make the store refuse to start.
//!
//! Half the records are raw bytes; the others are well-formed records built from fuzzed
//! fields, so that the state's own checks (revisions out of order, entries without their
//! log, compaction past the revision) are reached too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portway::__fuzz::{StoredTables, load_state};
use portway::pb::portway::state::v1 as api;
use prost::Message as _;

/// A log record as the backend stores it (its own message, mirrored here by tag).
#[derive(Clone, PartialEq, prost::Message)]
struct StoredRecord {
    #[prost(int64, tag = "1")]
    revision: i64,
    #[prost(int64, tag = "2")]
    time_ms: i64,
    #[prost(message, repeated, tag = "3")]
    events: Vec<api::Event>,
}

type Ev = (i32, String, Option<String>, i64, i64, bool);

fn entry(key: &str, value: Option<&str>, create: i64, modr: i64) -> api::Entry {
    let value = value.map(|v| portway::protojson::Value {
        kind: Some(match serde_json::from_str::<serde_json::Value>(v) {
            Ok(serde_json::Value::Number(n)) => portway::protojson::value::Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
            _ => portway::protojson::value::Kind::StringValue(v.to_string()),
        }),
    });
    api::Entry {
        key: key.to_string(),
        value,
        create_revision: create,
        mod_revision: modr,
        version: 1,
        ..Default::default()
    }
}

fuzz_target!(|input: (
    i64,
    i64,
    Vec<(i64, Option<&[u8]>, Vec<Ev>)>,
    Vec<(String, Option<&[u8]>, i64)>,
    Vec<(String, u64, &[u8])>
)| {
    let (revision, compact_revision, log, kv, dedup) = input;
    let mut tables = StoredTables { revision, compact_revision, ..Default::default() };
    for (at, raw, events) in log.into_iter().take(64) {
        let bytes = match raw {
            Some(raw) => raw.to_vec(),
            None => StoredRecord {
                revision: at,
                time_ms: 0,
                events: events
                    .into_iter()
                    .take(8)
                    .map(|(kind, key, value, create, modr, prev)| api::Event {
                        r#type: kind % 3,
                        entry: Some(entry(&key, value.as_deref(), create, modr)),
                        prev_entry: prev.then(|| entry(&key, None, create, modr.saturating_sub(1))),
                    })
                    .collect(),
            }
            .encode_to_vec(),
        };
        tables.log.push((at, bytes));
    }
    for (key, raw, modr) in kv.into_iter().take(64) {
        let bytes = match raw {
            Some(raw) => raw.to_vec(),
            None => entry(&key, Some("1"), modr, modr).encode_to_vec(),
        };
        tables.kv.push((key, bytes));
    }
    tables.dedup = dedup.into_iter().take(16).map(|(s, q, b)| (s, q, b.to_vec())).collect();
    let (report, keys) = load_state(tables);
    for skipped in &report.skipped {
        assert!(!skipped.problem.is_empty());
    }
    let _ = keys;
});
