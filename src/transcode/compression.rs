//! Message compression as the gateway sees it: which encodings it can read, what a client
//! accepts, and how big a compressed message is once decompressed, measured as it streams.
//!
//! The gateway reads `gzip` and `deflate` (zlib, as gRPC names it), the encodings of the
//! gRPC compression spec that flate2 (already a dependency of tonic) implements; `zstd` would
//! need a C library built for every build (`zstd-sys`) and none of the clients tested here
//! asks for it by default. A message in any other encoding cannot be measured against the
//! message limit, so the gateway does not let one through (see `crate::middleware::limit`).

use std::io::Write as _;

/// A message encoding the gateway can decompress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// `gzip` (RFC 1952).
    Gzip,
    /// `deflate`: the zlib format (RFC 1950), as gRPC and HTTP use the name.
    Deflate,
}

/// What a `grpc-encoding` (or `content-encoding`) value says about a body's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// No compression (`identity`, or no header).
    Identity,
    /// A codec the gateway reads.
    Known(Codec),
    /// Something else (`zstd`, `snappy`, a typo): unreadable here.
    Unknown,
}

/// The encodings the gateway reads, as a `grpc-accept-encoding` value.
pub const READABLE: &str = "gzip,deflate,identity";

impl Encoding {
    /// Reads a `grpc-encoding` value (case-insensitive, as HTTP content codings are).
    pub fn parse(value: Option<&[u8]>) -> Self {
        match value {
            None => Self::Identity,
            Some(v) if v.eq_ignore_ascii_case(b"identity") || v.is_empty() => Self::Identity,
            Some(v) if v.eq_ignore_ascii_case(b"gzip") => Self::Known(Codec::Gzip),
            Some(v) if v.eq_ignore_ascii_case(b"deflate") => Self::Known(Codec::Deflate),
            Some(_) => Self::Unknown,
        }
    }
}

/// Whether every encoding named in a `grpc-accept-encoding` value is one the gateway reads
/// (so the value can be passed on as it is).
pub fn all_readable(accept: &[u8]) -> bool {
    accept.split(|&b| b == b',').all(|token| {
        let token = token.trim_ascii();
        token.is_empty() || !matches!(Encoding::parse(Some(token)), Encoding::Unknown)
    })
}

/// The readable encodings of a `grpc-accept-encoding` value, in the client's order.
pub fn readable_only(accept: &[u8]) -> Vec<u8> {
    let kept: Vec<&[u8]> = accept
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty() && !matches!(Encoding::parse(Some(t)), Encoding::Unknown))
        .collect();
    kept.join(&b","[..])
}

/// Whether an HTTP `accept-encoding` (or Connect's `connect-accept-encoding`) value accepts
/// gzip: listed as `gzip`, `x-gzip` or `*`, with no `q=0`.
pub fn accepts_gzip(accept: &str) -> bool {
    accept.split(',').any(|item| {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or_default().trim();
        let named = coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") || coding == "*";
        let refused = parts.any(|p| {
            let p = p.trim();
            p.strip_prefix("q=")
                .or_else(|| p.strip_prefix("Q="))
                .is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q <= 0.0))
        });
        named && !refused
    })
}

/// Compresses `data` with `codec`.
pub fn compress(codec: Codec, data: &[u8]) -> Vec<u8> {
    match codec {
        Codec::Gzip => super::framing::gzip::compress(data),
        Codec::Deflate => {
            let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            // Writing to a Vec cannot fail.
            let _ = enc.write_all(data);
            enc.finish().unwrap_or_default()
        }
    }
}

/// Decompresses `data` (one message) with `codec`, refusing to produce more than `limit`
/// bytes (a decompression bomb guard).
pub fn decompress(codec: Codec, data: &[u8], limit: usize) -> Result<Vec<u8>, super::framing::gzip::DecompressError> {
    use std::io::Read as _;

    use super::framing::gzip::{self, DecompressError};
    match codec {
        Codec::Gzip => gzip::decompress(data, limit),
        Codec::Deflate => {
            let mut out = Vec::new();
            let mut reader = flate2::read::ZlibDecoder::new(data).take(limit as u64 + 1);
            reader.read_to_end(&mut out).map_err(|e| DecompressError::Invalid(e.to_string()))?;
            if out.len() > limit {
                return Err(DecompressError::TooLarge { limit });
            }
            Ok(out)
        }
    }
}

/// Connect (and HTTP) compress a message only from this size on: below it the CPU is not
/// worth the bytes saved. The threshold connect-es uses by default (`compressMinBytes`).
pub const COMPRESS_MIN_BYTES: usize = 1024;

/// Measures the decompressed size of one compressed message as its bytes stream by, without
/// keeping it: a streaming inflater writes into a counter that refuses to go past the limit,
/// so neither memory nor CPU grows with what a decompression bomb would expand to.
pub struct Meter {
    inner: MeterInner,
}

enum MeterInner {
    Gzip(flate2::write::GzDecoder<Counter>),
    Deflate(flate2::write::ZlibDecoder<Counter>),
}

/// What [`Meter::feed`] and [`Meter::finish`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// Within the limit so far (or in all, after `finish`).
    Within,
    /// The message decompresses to more than the limit.
    OverLimit,
    /// The data is not valid in its encoding; its size cannot be told. The decoder that
    /// reads the message will refuse it.
    Invalid,
}

/// Counts what the inflater writes, and stops it past the limit.
struct Counter {
    written: usize,
    limit: usize,
    over: bool,
}

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.written = self.written.saturating_add(buf.len());
        if self.written > self.limit {
            self.over = true;
            return Err(std::io::Error::other("over the message limit"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Meter {
    /// A meter for one message in `codec`, refusing more than `limit` decompressed bytes.
    pub fn new(codec: Codec, limit: usize) -> Self {
        let counter = Counter { written: 0, limit, over: false };
        let inner = match codec {
            Codec::Gzip => MeterInner::Gzip(flate2::write::GzDecoder::new(counter)),
            Codec::Deflate => MeterInner::Deflate(flate2::write::ZlibDecoder::new(counter)),
        };
        Self { inner }
    }

    fn counter(&self) -> &Counter {
        match &self.inner {
            MeterInner::Gzip(d) => d.get_ref(),
            MeterInner::Deflate(d) => d.get_ref(),
        }
    }

    fn verdict(&self, result: std::io::Result<()>) -> Measure {
        match result {
            Ok(()) => Measure::Within,
            Err(_) if self.counter().over => Measure::OverLimit,
            Err(_) => Measure::Invalid,
        }
    }

    /// Feeds the next compressed bytes.
    pub fn feed(&mut self, data: &[u8]) -> Measure {
        let result = match &mut self.inner {
            MeterInner::Gzip(d) => d.write_all(data),
            MeterInner::Deflate(d) => d.write_all(data),
        };
        self.verdict(result)
    }

    /// The message is complete: flushes what the inflater still holds.
    pub fn finish(&mut self) -> Measure {
        let result = match &mut self.inner {
            MeterInner::Gzip(d) => d.try_finish(),
            MeterInner::Deflate(d) => d.try_finish(),
        };
        self.verdict(result)
    }

    /// Decompressed bytes counted so far.
    #[cfg(test)]
    pub fn decompressed(&self) -> usize {
        self.counter().written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn meters_both_codecs_fed_in_any_split() {
        let message = vec![7u8; 100_000];
        for (codec, compressed) in
            [(Codec::Gzip, super::super::framing::gzip::compress(&message)), (Codec::Deflate, zlib(&message))]
        {
            for split in [1, 7, compressed.len() / 2, compressed.len()] {
                let mut within = Meter::new(codec, 100_000);
                for chunk in compressed.chunks(split) {
                    assert_eq!(within.feed(chunk), Measure::Within, "{codec:?}");
                }
                assert_eq!(within.finish(), Measure::Within);
                assert_eq!(within.decompressed(), 100_000);
                let mut over = Meter::new(codec, 99_999);
                let mut verdicts: Vec<Measure> = compressed.chunks(split).map(|c| over.feed(c)).collect();
                verdicts.push(over.finish());
                assert!(verdicts.contains(&Measure::OverLimit), "{codec:?} split {split}: {verdicts:?}");
            }
        }
    }

    #[test]
    fn a_bomb_stops_at_the_limit() {
        // 64 MiB of zeros compress to about 64 KiB; the meter stops a little past 4 MiB
        // (at most one inflater buffer over), having kept nothing.
        let bomb = super::super::framing::gzip::compress(&vec![0u8; 64 << 20]);
        let mut meter = Meter::new(Codec::Gzip, 4 << 20);
        assert_eq!(meter.feed(&bomb), Measure::OverLimit);
        assert!(meter.decompressed() <= (4 << 20) + (64 << 10), "{}", meter.decompressed());
    }

    #[test]
    fn invalid_data_is_told_apart() {
        let mut meter = Meter::new(Codec::Gzip, 1000);
        assert_eq!(meter.feed(b"this is not gzip at all"), Measure::Invalid);
    }

    #[test]
    fn encodings_and_accept_lists() {
        assert_eq!(Encoding::parse(None), Encoding::Identity);
        assert_eq!(Encoding::parse(Some(b"GZIP")), Encoding::Known(Codec::Gzip));
        assert_eq!(Encoding::parse(Some(b"deflate")), Encoding::Known(Codec::Deflate));
        assert_eq!(Encoding::parse(Some(b"zstd")), Encoding::Unknown);
        assert!(all_readable(b"identity,deflate,gzip"));
        assert!(all_readable(b"gzip"));
        assert!(!all_readable(b"zstd, gzip"));
        assert_eq!(readable_only(b"zstd, gzip ,snappy,identity"), b"gzip,identity");
        assert!(accepts_gzip("gzip"));
        assert!(accepts_gzip("br, gzip;q=0.5"));
        assert!(accepts_gzip("*"));
        assert!(!accepts_gzip("gzip;q=0"));
        assert!(!accepts_gzip("br, deflate"));
        assert!(!accepts_gzip("identity"));
    }
}
