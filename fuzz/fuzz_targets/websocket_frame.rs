//! The WebSocket protocol's client-frame parser (`portway.v1.json` text frames) and its
//! fast path for message frames. Neither may panic, and where both read a frame they must
//! read the same call id and message.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let parsed = portway::__fuzz::parse_client_frame(text);
    let Some((id, message)) = portway::__fuzz::canonical_message(text) else { return };
    assert!(text.contains(message));
    // The fast path splits without parsing; when the whole frame is a message frame of
    // exactly that shape, the general parser must see the same id and message.
    if let Ok(frame) = parsed
        && frame.starts_with("Message")
    {
        assert!(frame.contains(&format!("id: {id},")), "{frame} vs id {id}");
    }
});
