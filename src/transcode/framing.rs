//! The 5-byte length-prefixed envelope shared by gRPC, gRPC-Web and Connect streaming:
//! one flags byte, a big-endian u32 length, then the payload.
//!
//! Hand-written because it is a dozen lines and every adapter needs it on raw bytes;
//! tonic's own codec is private to its generated code.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Flag bit: the payload is compressed with the stream's negotiated encoding.
pub const FLAG_COMPRESSED: u8 = 0x01;
/// Connect streaming flag bit: this is the end-of-stream message.
pub const FLAG_END_STREAM: u8 = 0x02;
/// gRPC-Web flag bit: this is the trailer frame, which ends a response.
pub const FLAG_TRAILERS: u8 = 0x80;
/// The envelope header length.
pub const HEADER_LEN: usize = 5;

/// The bits of a gRPC message's flags byte that gRPC reserves: all but [`FLAG_COMPRESSED`]
/// (PROTOCOL-HTTP2 defines the byte as 0 or 1). A message with any of them set is malformed.
pub const GRPC_RESERVED_FLAGS: u8 = !FLAG_COMPRESSED;

/// The status for a gRPC `what` ("request" or "response") message whose `flags` have
/// reserved bits set: `INTERNAL`, the status gRPC gives every malformed frame.
pub fn reserved_flags_status(what: &str, flags: u8) -> tonic::Status {
    let trailers = if flags & FLAG_TRAILERS != 0 && what == "request" {
        "; 0x80 marks the trailer frame of a gRPC-Web response, which a request never carries"
    } else {
        ""
    };
    tonic::Status::internal(format!(
        "a {what} message has the flags {flags:#04x}, but gRPC defines only 0x01 (compressed) and reserves the other \
         bits{trailers}"
    ))
}

/// Frames `payload` with `flags`.
pub fn encode(flags: u8, payload: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(HEADER_LEN + payload.len());
    encode_into(&mut buf, flags, payload);
    buf.freeze()
}

/// Appends one envelope to `buf`.
pub fn encode_into(buf: &mut BytesMut, flags: u8, payload: &[u8]) {
    buf.reserve(HEADER_LEN + payload.len());
    buf.put_u8(flags);
    // A payload over u32::MAX cannot be framed; limits far below that are enforced upstream.
    buf.put_u32(u32::try_from(payload.len()).unwrap_or(u32::MAX));
    buf.put_slice(payload);
}

/// One decoded envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The flags byte.
    pub flags: u8,
    /// The payload, still compressed if `flags & FLAG_COMPRESSED`.
    pub payload: Bytes,
}

/// Why the byte stream is not a valid sequence of envelopes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// An envelope declares a payload larger than the configured limit.
    #[error("message of {len} bytes is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The declared length.
        len: usize,
        /// The limit in force.
        limit: usize,
    },
    /// The stream ended inside an envelope.
    #[error("stream ended inside a message ({0} bytes left over)")]
    Truncated(usize),
}

/// Incremental decoder: push bytes as they arrive, pop whole envelopes.
#[derive(Debug)]
pub struct Decoder {
    buf: BytesMut,
    max_len: usize,
}

impl Decoder {
    /// A decoder that rejects payloads over `max_len` bytes before buffering them.
    pub fn new(max_len: usize) -> Self {
        Self { buf: BytesMut::new(), max_len }
    }

    /// Adds received bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next whole envelope, if one is buffered.
    pub fn next_envelope(&mut self) -> Result<Option<Envelope>, FrameError> {
        if self.buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let flags = self.buf[0];
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if len > self.max_len {
            return Err(FrameError::TooLarge { len, limit: self.max_len });
        }
        if self.buf.len() < HEADER_LEN + len {
            return Ok(None);
        }
        self.buf.advance(HEADER_LEN);
        let payload = self.buf.split_to(len).freeze();
        Ok(Some(Envelope { flags, payload }))
    }

    /// Whether no byte is buffered (no envelope, whole or partial, is waiting).
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Call at the end of the stream: an error if a partial envelope is left.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.buf.is_empty() { Ok(()) } else { Err(FrameError::Truncated(self.buf.len())) }
    }
}

/// gzip helpers for compressed envelopes and bodies.
pub mod gzip {
    use std::io::{Read, Write};

    /// Why a body or message could not be decompressed. The two cases get different
    /// status codes: a message over the limit is `RESOURCE_EXHAUSTED` (gRPC's
    /// `doc/statuscodes.md`), corrupt data is the sender's error.
    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    pub enum DecompressError {
        /// The data is not valid in its encoding.
        #[error("invalid compressed data: {0}")]
        Invalid(String),
        /// The decompressed data would exceed the limit.
        #[error("decompressed message is larger than the limit of {limit} bytes")]
        TooLarge {
            /// The limit in force.
            limit: usize,
        },
    }

    /// Decompresses `data`, refusing to produce more than `limit` bytes (a zip bomb guard).
    pub fn decompress(data: &[u8], limit: usize) -> Result<Vec<u8>, DecompressError> {
        let mut out = Vec::new();
        let mut reader = flate2::read::GzDecoder::new(data).take(limit as u64 + 1);
        reader.read_to_end(&mut out).map_err(|e| DecompressError::Invalid(e.to_string()))?;
        if out.len() > limit {
            return Err(DecompressError::TooLarge { limit });
        }
        Ok(out)
    }

    /// Compresses `data`.
    pub fn compress(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        // Writing to a Vec cannot fail.
        let _ = enc.write_all(data);
        enc.finish().unwrap_or_default()
    }
}

/// Whether a stream of envelopes is between two messages or inside one, for the drain at
/// shutdown (`crate::middleware::shutdown`), for proxy mode's forwarded
/// bodies (`crate::proxy`), which lets a request finish the message it is
/// sending, and for the call metrics, which count messages with it. Framing only: sizes and
/// compression are the message limit's business.
#[derive(Debug, Default)]
pub(crate) struct Envelopes {
    /// Envelope headers read so far: the messages begun.
    pub(crate) messages: u64,
    remaining: usize,
    header: [u8; HEADER_LEN],
    header_len: usize,
}

impl Envelopes {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Takes the next bytes of the stream.
    pub(crate) fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = self.remaining.min(data.len());
                self.remaining -= n;
                data = &data[n..];
                continue;
            }
            let n = (HEADER_LEN - self.header_len).min(data.len());
            self.header[self.header_len..self.header_len + n].copy_from_slice(&data[..n]);
            self.header_len += n;
            data = &data[n..];
            if self.header_len == HEADER_LEN {
                self.header_len = 0;
                self.messages += 1;
                let [_, a, b, c, d] = self.header;
                self.remaining = u32::from_be_bytes([a, b, c, d]) as usize;
            }
        }
    }

    /// No message begun and unfinished.
    pub(crate) fn between_messages(&self) -> bool {
        self.remaining == 0 && self.header_len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_split_anywhere() {
        let mut wire = BytesMut::new();
        encode_into(&mut wire, 0, b"hello");
        encode_into(&mut wire, FLAG_END_STREAM, b"");
        encode_into(&mut wire, FLAG_COMPRESSED, &[7; 300]);
        for split in 0..wire.len() {
            let mut d = Decoder::new(1024);
            let mut got = Vec::new();
            for part in [&wire[..split], &wire[split..]] {
                d.push(part);
                while let Some(e) = d.next_envelope().unwrap() {
                    got.push(e);
                }
            }
            d.finish().unwrap();
            assert_eq!(got.len(), 3, "split at {split}");
            assert_eq!(&got[0].payload[..], b"hello");
            assert_eq!(got[1].flags, FLAG_END_STREAM);
            assert_eq!(got[2].payload.len(), 300);
        }
    }

    #[test]
    fn rejects_oversized_before_buffering() {
        let mut d = Decoder::new(4);
        d.push(&[0, 0, 0, 0, 5]);
        assert_eq!(d.next_envelope(), Err(FrameError::TooLarge { len: 5, limit: 4 }));
    }

    #[test]
    fn reports_truncation() {
        let mut d = Decoder::new(100);
        d.push(&[0, 0, 0, 0, 5, 1, 2]);
        assert_eq!(d.next_envelope(), Ok(None));
        assert_eq!(d.finish(), Err(FrameError::Truncated(7)));
    }

    #[test]
    fn gzip_limit_guards_bombs() {
        let big = vec![0u8; 10_000];
        let c = gzip::compress(&big);
        assert_eq!(gzip::decompress(&c, 10_000).unwrap().len(), 10_000);
        assert_eq!(gzip::decompress(&c, 9_999), Err(gzip::DecompressError::TooLarge { limit: 9_999 }));
        assert!(matches!(gzip::decompress(b"not gzip", 100), Err(gzip::DecompressError::Invalid(_))));
    }
}
