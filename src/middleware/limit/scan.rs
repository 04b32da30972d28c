//! Following the 5-byte envelopes of a gRPC body as it streams by: where each message
//! starts, how long it is, how large it is once decompressed, and how many there are.
//!
//! Hand-written: [`crate::transcode::framing::Decoder`] buffers whole messages and tonic's
//! decoder is private, while this only reads the headers and, for a compressed message,
//! streams its bytes through a [`Meter`] that keeps nothing.

use tonic::Status;

use crate::transcode::compression::{Encoding, Measure, Meter};
use crate::transcode::framing::{self, FLAG_COMPRESSED, GRPC_RESERVED_FLAGS, HEADER_LEN};
use crate::transcode::limits;

/// Which way a body goes, for the statuses' wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    Request,
    Response,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Self::Request => "request",
            Self::Response => "response",
        }
    }
}

/// Follows the envelopes in a byte stream.
pub(super) struct Scanner {
    max: usize,
    direction: Direction,
    /// The body's `grpc-encoding`: what a message flagged compressed is compressed with.
    encoding: Encoding,
    /// Payload bytes of the current message still to come.
    remaining: usize,
    /// The bytes of an envelope header seen so far (at most [`HEADER_LEN`]).
    header: [u8; HEADER_LEN],
    header_len: usize,
    /// Measuring the compressed message now streaming by (boxed: most bodies never need
    /// one, and every body carries a scanner).
    meter: Option<Box<Meter>>,
    /// Envelope headers read so far.
    pub messages: u32,
}

/// Why a message may not pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// Its header declares more bytes than a message within the limit can take.
    TooLarge { len: usize },
    /// It decompresses to more than the limit.
    Decompressed,
    /// It is flagged compressed in an encoding the gateway cannot read, so its size cannot be told.
    Unreadable,
    /// Its flags have bits set that gRPC reserves (a gRPC-Web trailer frame in a request, say).
    ReservedFlags { flags: u8 },
}

/// A refused message, and how many bytes of the chunk came before it (0 when the
/// refused message began in an earlier chunk): what precedes it may still be relayed.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Refused {
    pub refusal: Refusal,
    pub release: usize,
}

impl Scanner {
    pub(super) fn new(max: usize, direction: Direction, encoding: Encoding) -> Self {
        Self {
            max,
            direction,
            encoding,
            remaining: 0,
            header: [0; HEADER_LEN],
            header_len: 0,
            meter: None,
            messages: 0,
        }
    }

    /// Scans `data` and returns how many of its bytes can be passed on now, together with
    /// everything held back from earlier chunks. What follows is held back: the start of an
    /// envelope header that the chunk cuts off, and a compressed message until it has been
    /// measured whole, so that no byte of a message over the limit is ever relayed.
    pub(super) fn scan(&mut self, data: &[u8]) -> Result<usize, Refused> {
        let mut i = 0;
        let mut release = 0;
        while i < data.len() {
            if self.remaining > 0 {
                let n = self.remaining.min(data.len() - i);
                let chunk = &data[i..i + n];
                self.remaining -= n;
                i += n;
                if let Some(meter) = self.meter.as_mut() {
                    let mut verdict = meter.feed(chunk);
                    if verdict == Measure::Within && self.remaining == 0 {
                        verdict = meter.finish();
                    }
                    match verdict {
                        Measure::OverLimit => return Err(Refused { refusal: Refusal::Decompressed, release }),
                        // The decoder that reads it will refuse it; its size no longer matters.
                        Measure::Invalid => self.meter = None,
                        Measure::Within if self.remaining == 0 => self.meter = None,
                        Measure::Within => continue,
                    }
                }
                release = i;
                continue;
            }
            let (flags, len) = if self.header_len == 0
                && let Some(&[flags, a, b, c, d]) = data.get(i..i + HEADER_LEN)
            {
                // The usual case: the whole header in this chunk.
                i += HEADER_LEN;
                (flags, u32::from_be_bytes([a, b, c, d]) as usize)
            } else {
                let n = (HEADER_LEN - self.header_len).min(data.len() - i);
                self.header[self.header_len..self.header_len + n].copy_from_slice(&data[i..i + n]);
                self.header_len += n;
                i += n;
                if self.header_len < HEADER_LEN {
                    break;
                }
                self.header_len = 0;
                let [flags, a, b, c, d] = self.header;
                (flags, u32::from_be_bytes([a, b, c, d]) as usize)
            };
            self.messages = self.messages.saturating_add(1);
            // The one place every gRPC and gRPC-Web body's envelope headers are read on the
            // way to and from the service: a service (tonic's decoder, or one that re-frames
            // what it reads) would otherwise take a reserved bit for "not compressed".
            if flags & GRPC_RESERVED_FLAGS != 0 {
                return Err(Refused { refusal: Refusal::ReservedFlags { flags }, release });
            }
            let compressed = flags & FLAG_COMPRESSED != 0;
            let bound = match (compressed, self.encoding) {
                (true, Encoding::Known(_)) => limits::compressed(self.max),
                (true, Encoding::Unknown) => return Err(Refused { refusal: Refusal::Unreadable, release }),
                // A flag without an encoding is the decoder's protocol error to report.
                _ => self.max,
            };
            if len > bound {
                return Err(Refused { refusal: Refusal::TooLarge { len }, release });
            }
            self.remaining = len;
            match self.encoding {
                Encoding::Known(codec) if compressed && len > 0 => {
                    self.meter = Some(Box::new(Meter::new(codec, self.max)));
                }
                _ => release = i,
            }
        }
        Ok(release)
    }

    /// The status for a refused message.
    pub(super) fn status(&self, refusal: Refusal) -> Status {
        let what = self.direction.as_str();
        match refusal {
            Refusal::TooLarge { len } => Status::resource_exhausted(format!(
                "{what} message of {len} bytes is larger than the limit of {} bytes",
                self.max
            )),
            Refusal::Decompressed => Status::resource_exhausted(format!(
                "{what} message is larger than the limit of {} bytes once decompressed",
                self.max
            )),
            Refusal::ReservedFlags { flags } => framing::reserved_flags_status(what, flags),
            Refusal::Unreadable => Status::internal(format!(
                "{what} message is compressed in an encoding the gateway cannot read, so its size cannot be checked"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcode::compression::Codec;
    use crate::transcode::framing::gzip;

    fn envelope(flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![flags];
        v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    fn plain(len: usize) -> Vec<u8> {
        envelope(0, &vec![7; len])
    }

    fn scanner(max: usize) -> Scanner {
        Scanner::new(max, Direction::Response, Encoding::Known(Codec::Gzip))
    }

    /// What a body relays of `wire` split in two at `split`: released bytes, plus the held
    /// bytes once a later release lets them go.
    fn relayed(max: usize, wire: &[u8], split: usize) -> (usize, Option<Refusal>) {
        let mut s = scanner(max);
        let (a, b) = wire.split_at(split);
        match s.scan(a) {
            Err(e) => (e.release, Some(e.refusal)),
            Ok(released) => {
                let held = a.len() - released;
                match s.scan(b) {
                    Ok(rb) => (released + if rb > 0 { held + rb } else { 0 }, None),
                    Err(e) => (released + if e.release > 0 { held + e.release } else { 0 }, Some(e.refusal)),
                }
            }
        }
    }

    #[test]
    fn releases_everything_but_a_cut_header() {
        let wire: Vec<u8> = [plain(3), plain(0), plain(10)].concat();
        for split in 0..wire.len() {
            let mut s = scanner(10);
            let (a, b) = wire.split_at(split);
            let ra = s.scan(a).unwrap();
            let held = a.len() - ra;
            let rb = s.scan(b).unwrap();
            assert_eq!(rb, b.len(), "split at {split}: the rest is released");
            assert_eq!(held + rb + ra, wire.len(), "split at {split}");
            assert!(held < HEADER_LEN, "split at {split}: only a header's start is held back");
            assert_eq!(s.messages, 3);
        }
    }

    #[test]
    fn refuses_oversized_messages_after_releasing_the_ones_before() {
        let wire: Vec<u8> = [plain(3), plain(11)].concat();
        for split in 0..wire.len() {
            let (sent, refusal) = relayed(10, &wire, split);
            assert_eq!(refusal, Some(Refusal::TooLarge { len: 11 }), "split at {split}");
            assert_eq!(sent, HEADER_LEN + 3, "split at {split}: all of the first message, nothing of the second");
        }
    }

    #[test]
    fn compressed_messages_are_measured_decompressed_and_held_until_measured() {
        // 4,000 bytes that gzip to far fewer: over a limit of 3,999, within one of 4,000.
        let big = envelope(FLAG_COMPRESSED, &gzip::compress(&[1; 4000]));
        let wire: Vec<u8> = [plain(3), big.clone(), plain(2)].concat();
        for split in 0..wire.len() {
            let (sent, refusal) = relayed(3999, &wire, split);
            assert_eq!(refusal, Some(Refusal::Decompressed), "split at {split}");
            assert_eq!(sent, HEADER_LEN + 3, "split at {split}: nothing of the compressed message");
            let (sent, refusal) = relayed(4000, &wire, split);
            assert_eq!((sent, refusal), (wire.len(), None), "split at {split}");
        }
        // Without an encoding to read them with, flagged messages are refused unmeasured.
        let mut unknown = Scanner::new(4000, Direction::Response, Encoding::Unknown);
        assert_eq!(unknown.scan(&big), Err(Refused { refusal: Refusal::Unreadable, release: 0 }));
        // With no encoding at all, the flag is the decoder's protocol error: passed on.
        let mut identity = Scanner::new(4000, Direction::Request, Encoding::Identity);
        assert_eq!(identity.scan(&big), Ok(big.len()));
    }

    #[test]
    fn reserved_flag_bits_are_refused_after_the_messages_before() {
        for flags in [0x02, 0x04, 0x80, 0x81, 0xff] {
            let wire: Vec<u8> = [plain(3), envelope(flags, &[1, 2])].concat();
            for split in 0..wire.len() {
                let (sent, refusal) = relayed(10, &wire, split);
                assert_eq!(refusal, Some(Refusal::ReservedFlags { flags }), "flags {flags:#x}, split at {split}");
                assert_eq!(sent, HEADER_LEN + 3, "flags {flags:#x}, split at {split}: only the first message");
            }
            // Checked before the length: a reserved bit is the first thing wrong.
            let mut s = scanner(10);
            let refused = s.scan(&envelope(flags, &[0; 11])).map_err(|e| e.refusal);
            assert_eq!(refused, Err(Refusal::ReservedFlags { flags }));
            assert_eq!(s.status(Refusal::ReservedFlags { flags }).code(), tonic::Code::Internal);
        }
    }

    #[test]
    fn compressed_lengths_may_exceed_the_limit_a_little() {
        // Incompressible data grows when compressed; a message exactly at the limit passes.
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        let noise: Vec<u8> = (0..20_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        let compressed = gzip::compress(&noise);
        assert!(compressed.len() > noise.len(), "the test needs data that grows");
        let mut s = scanner(20_000);
        let wire = envelope(FLAG_COMPRESSED, &compressed);
        assert_eq!(s.scan(&wire), Ok(wire.len()));
        let mut s = scanner(19_999);
        assert_eq!(s.scan(&wire).map_err(|e| e.refusal), Err(Refusal::Decompressed));
    }
}
