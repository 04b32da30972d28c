//! What the one message limit (`Config::max_message_bytes`) means for the bytes that carry a
//! message.
//!
//! The limit is the size of the message itself, decoded: the binary protobuf encoding, after
//! decompression, whatever the protocol and its codec. Two other bounds follow from it:
//!
//! - **JSON text** ([`json_text`]): a message sent as JSON is parsed before it can be
//!   measured, so its text has a bound of its own, to cap what parsing holds in memory:
//!   twice the message limit plus 64 KiB. That admits every message within the limit whose
//!   `bytes` fields are base64 (4/3 of their size) and whose numbers are written compactly
//!   (a packed varint of one byte is at most two characters, `0,`); JSON with much
//!   whitespace, or many enum names (a one-byte value written as a name), can exceed it
//!   while its message would fit, and is refused as `RESOURCE_EXHAUSTED` all the same.
//! - **Compressed bytes** ([`compressed`]): incompressible data grows a little when
//!   compressed (deflate's stored blocks, the gzip header and trailer), so a compressed
//!   message may be slightly larger than the limit on the wire and still fit decompressed.

/// The largest JSON text accepted for one message under a limit of `max_message` bytes.
pub fn json_text(max_message: usize) -> usize {
    max_message.saturating_mul(2).saturating_add(64 * 1024)
}

/// The most compressed bytes a message of at most `max` bytes can take (deflate adds 5 bytes
/// per 64 KiB stored block; gzip 18 bytes of header and trailer): the bound on the declared
/// length of a compressed message.
pub fn compressed(max: usize) -> usize {
    max.saturating_add(max / 256).saturating_add(1024)
}
