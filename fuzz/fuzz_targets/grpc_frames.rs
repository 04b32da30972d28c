//! The gRPC envelope (5-byte prefix) readers: the framing decoder the adapters use, and
//! the gateway's message limit, which reads only the headers as bodies stream by. Both get
//! the same bytes, cut into the same chunks, and must agree: the limit relays exactly the
//! bytes before the first message over the limit (all of them if none is), and fails the
//! request iff such a message's header arrived; the decoder yields the same messages.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portway::transcode::framing::{Decoder, FrameError, GRPC_RESERVED_FLAGS, HEADER_LEN};

// Input: the limit (2 bytes, big-endian), then the cuts and the body (`portway_fuzz::Input`).
fuzz_target!(|input: &[u8]| {
    let Some(input) = portway_fuzz::Input::parse(input, 2) else { return };
    let max = usize::from(u16::from_be_bytes([input.head[0], input.head[1]]));
    let (chunks, data) = (input.body, input.raw_body);

    // The oracle: walk the envelopes of the whole byte stream.
    let mut at = 0;
    let mut oversized_at = None;
    // The first envelope whose flags have bits gRPC reserves: the limit refuses it (the
    // decoder, which leaves flags to its callers, does not), before it looks at its length.
    let mut reserved_at = None;
    let mut whole = Vec::new();
    loop {
        if data.len() < at + HEADER_LEN {
            break;
        }
        let len = u32::from_be_bytes([data[at + 1], data[at + 2], data[at + 3], data[at + 4]]) as usize;
        if data[at] & GRPC_RESERVED_FLAGS != 0 && reserved_at.is_none() {
            reserved_at = Some(at);
        }
        if len > max {
            oversized_at = Some(at);
            break;
        }
        if data.len() < at + HEADER_LEN + len {
            break;
        }
        whole.push(&data[at + HEADER_LEN..at + HEADER_LEN + len]);
        at += HEADER_LEN + len;
    }

    // The decoder, fed chunk by chunk.
    let mut decoder = Decoder::new(max);
    let mut decoded = Vec::new();
    let mut too_large = false;
    'feed: for c in &chunks {
        decoder.push(c);
        loop {
            match decoder.next_envelope() {
                Ok(Some(e)) => decoded.push(e.payload),
                Ok(None) => break,
                Err(FrameError::TooLarge { len, limit }) => {
                    assert!(len > limit);
                    too_large = true;
                    break 'feed;
                }
                Err(e) => panic!("unexpected {e}"),
            }
        }
    }
    assert_eq!(too_large, oversized_at.is_some());
    assert_eq!(decoded.len(), whole.len());
    for (d, w) in decoded.iter().zip(&whole) {
        assert_eq!(&d[..], *w);
    }
    if !too_large {
        assert_eq!(decoder.finish().is_ok(), at == data.len());
    }

    // Where the limit refuses, and with which status.
    let refused_at = reserved_at.or(oversized_at);
    let (code, grpc_status) =
        if reserved_at.is_some() { (tonic::Code::Internal, "13") } else { (tonic::Code::ResourceExhausted, "8") };

    // The message limit on a request body.
    let rt = portway_fuzz::runtime();
    let (relayed, error) = rt.block_on(portway::__fuzz::limit_request(max, chunks.clone()));
    match refused_at {
        // A request body streams on while a header is incomplete: the part of the refused
        // message's header that arrived before its length did may be relayed, then the body
        // fails (the service never sees a whole message from it).
        Some(at) => {
            assert!(data.starts_with(&relayed), "relayed bytes the client did not send");
            assert!(relayed.len() >= at, "the messages before the refused one were not all relayed");
            assert!(relayed.len() < at + HEADER_LEN, "bytes past the refused message's header were relayed");
            assert_eq!(error.map(|s| s.code()), Some(code));
        }
        None => {
            assert_eq!(relayed, data);
            assert!(error.is_none());
        }
    }

    // And on a response body: a prefix is relayed, then the trailers say why it stopped.
    let (relayed, trailers) = rt.block_on(portway::__fuzz::limit_response(max, chunks));
    let status = trailers.as_ref().and_then(|t| t.get("grpc-status")).and_then(|v| v.to_str().ok().map(str::to_owned));
    match refused_at {
        Some(at) => {
            assert_eq!(relayed, &data[..at]);
            assert_eq!(status.as_deref(), Some(grpc_status));
        }
        // A response that ends inside an envelope is relayed whole, the truncated envelope
        // too, for the client's decoder to report; the limit has nothing to say about it.
        None => {
            assert_eq!(relayed, data);
            assert_eq!(status.as_deref(), Some("0"));
        }
    }
});
