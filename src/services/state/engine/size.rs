//! The encoded size of what one write makes the service send in one message: a revision's
//! events (a Watch, History or Sync message never splits a revision) and a transaction's
//! answer. A write whose revision or answer would not fit in one message is refused before
//! anything is written: otherwise every watcher and every History replay reaching that
//! revision would fail on it, again after every resume, until it is compacted.
//!
//! The sizes are upper bounds computed from the entries' exact encoded lengths and
//! protobuf's framing (a tag and a length prefix around each nested message), so no entry
//! is copied to measure it.

use prost::Message as _;
use prost::encoding::encoded_len_varint;

use super::types::{EntryRef, Event, OpOutput};
use crate::services::state::error::StoreError;
use crate::services::state::options::StateOptions;

/// Bytes a carrying message adds around its events or results at most: its own scalar
/// fields (revisions, ids, flags; at most 11 bytes each) and the oneof and message framing
/// of a `SyncResponse`, the deepest carrier.
const WRAPPER: usize = 64;
/// Bytes an int64 field takes at most (a tag and a 10-byte varint).
const INT64: usize = 11;

/// A nested message of `len` bytes with its tag (one byte: field numbers here are small)
/// and length prefix.
fn framed(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

fn entry(e: Option<&EntryRef>) -> usize {
    e.map_or(0, |e| framed(e.encoded_len()))
}

/// One event as a `repeated Event` element, with its previous entry (watchers may ask).
fn event(e: &Event) -> usize {
    // The type enum: a tag and a one-byte varint.
    framed(2 + entry(Some(&e.entry)) + entry(e.prev.as_ref()))
}

/// One result as a `repeated OpResult` element of a `TxnResponse`.
fn result(r: &OpOutput) -> usize {
    let inner = match r {
        OpOutput::Put { entry: e, prev } => INT64 + entry(Some(e)) + entry(prev.as_ref()),
        // `deleted`: a tag and a byte.
        OpOutput::Delete { prev } => INT64 + 2 + entry(prev.as_ref()),
        OpOutput::Get { entry: e } => INT64 + entry(e.as_ref()),
    };
    framed(framed(inner))
}

fn refuse(what: &'static str, options: &StateOptions, actual: usize) -> StoreError {
    StoreError::Limit {
        limit: "max_message_bytes",
        what,
        max: i64::try_from(options.max_message_bytes).unwrap_or(i64::MAX),
        actual: i64::try_from(actual).unwrap_or(i64::MAX),
        exhausted: false,
    }
}

/// Refuses a write whose revision (`events`) or transaction answer (`results`, for a
/// transaction) would not fit in one message of `max_message_bytes`.
pub(super) fn check(events: &[Event], results: Option<&[OpOutput]>, options: &StateOptions) -> Result<(), StoreError> {
    let max = options.max_message_bytes;
    let revision = WRAPPER + events.iter().map(event).sum::<usize>();
    if revision > max {
        return Err(refuse(
            "encoded size of the write's revision (its events with their previous entries)",
            options,
            revision,
        ));
    }
    if let Some(results) = results {
        let answer = WRAPPER + results.iter().map(result).sum::<usize>();
        if answer > max {
            return Err(refuse("encoded size of the transaction's answer", options, answer));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::protojson::Value;

    use super::*;
    use crate::pb::portway::state::v1 as api;
    use crate::services::state::engine::EventKind;

    fn entry_of(key: &str, bytes: usize, revision: i64) -> EntryRef {
        Arc::new(api::Entry {
            key: key.into(),
            value: Some(Value::from("x".repeat(bytes))),
            create_revision: i64::MAX,
            mod_revision: revision,
            version: i64::MAX,
            update_time: Some(crate::protojson::Timestamp { seconds: i64::MAX, nanos: 999_999_999 }),
        })
    }

    /// The bounds are never below what the messages really encode to.
    #[test]
    fn the_bounds_hold_for_the_real_messages() {
        for bytes in [0, 1, 127, 128, 16_383, 16_384, 300_000, 2_097_152] {
            let (e, p) = (entry_of("key", bytes, i64::MAX), entry_of("key", bytes / 2, 1));
            let ev = Event { kind: EventKind::Put, entry: e.clone(), prev: Some(p.clone()) };
            let events = vec![ev.to_api(true), ev.to_api(true)];
            let sync = api::SyncResponse {
                response: Some(api::sync_response::Response::Events(api::SyncEvents {
                    watch_id: u64::MAX,
                    revision: i64::MAX,
                    events: events.clone(),
                })),
            };
            let watch = api::WatchResponse { created: true, revision: i64::MAX, events };
            let bound = WRAPPER + 2 * event(&ev);
            assert!(sync.encoded_len() <= bound && watch.encoded_len() <= bound, "{bytes}");

            let results = [
                OpOutput::Put { entry: e.clone(), prev: Some(p.clone()) },
                OpOutput::Delete { prev: Some(p.clone()) },
                OpOutput::Get { entry: Some(e.clone()) },
            ];
            let out = crate::services::state::engine::WriteOutput {
                revision: i64::MAX,
                succeeded: true,
                results: results.to_vec(),
            };
            let answer = crate::services::state::convert::txn_response(&out);
            assert!(answer.encoded_len() <= WRAPPER + results.iter().map(result).sum::<usize>(), "{bytes}");
        }
    }
}
