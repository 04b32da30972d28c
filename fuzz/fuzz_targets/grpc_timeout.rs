//! The `grpc-timeout` header: any value parses or is refused without a panic, and what the
//! adapters write (from any deadline) parses back to at least that deadline, or to the
//! largest value the header can say.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use portway::__fuzz::{format_grpc_timeout, parse_grpc_timeout};

/// `99999999H`, the longest deadline the header can carry.
const MAX: Duration = Duration::from_secs(99_999_999 * 3600);

fn round_trip(d: Duration) {
    let text = format_grpc_timeout(d);
    let back = parse_grpc_timeout(&text).unwrap_or_else(|| panic!("{d:?} formats as {text:?}, which does not parse"));
    assert!(back >= d.min(MAX), "{d:?} formats as {text:?}, which reads back as {back:?}");
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(d) = parse_grpc_timeout(text) {
            assert!(d <= MAX, "{text:?} parses as {d:?}, past the header's range");
            round_trip(d);
        }
    }
    if let Some(bytes) = data.get(..12) {
        let secs = u64::from_be_bytes(bytes[..8].try_into().unwrap_or_default());
        let nanos = u32::from_be_bytes(bytes[8..12].try_into().unwrap_or_default()) % 1_000_000_000;
        round_trip(Duration::new(secs, nanos));
    }
});
