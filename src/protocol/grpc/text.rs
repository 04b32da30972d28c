//! gRPC-Web text request bodies (`application/grpc-web-text`): base64, decoded as it streams,
//! so that tonic-web is handed binary gRPC-Web.
//!
//! tonic-web decodes the largest run of whole four-character groups of each chunk in one
//! call, so it refuses two bodies the gRPC-Web protocol (PROTOCOL-WEB.md) lets a client send:
//! unpadded base64 (the last group is short), and frames encoded one by one and sent one
//! after the other, each padded (`AAAAAAA=AAAAAAA=`: padding inside the text). This reads
//! both, with a chunk boundary at any byte, and keeps refusing everything else that is not
//! base64 (other characters, line breaks, misplaced padding, a lone last character).
//!
//! Hand-written around the base64 crate, which decodes each run of groups: no crate reads a
//! sequence of separately padded segments, and the crate's `DecoderReader` is a blocking
//! `Read` that stops at the first padding. What is written here is only where a segment ends
//! (the group that holds a `=`) and the at most three characters a chunk leaves over.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use base64::DecodeSliceError;
use base64::Engine as _;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tonic::body::Body;

/// Standard base64, padding optional (unpadded text is accepted at the end of a body).
const ENGINE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a text body could not be decoded. Its message is what the client reads (after
/// tonic-web's `tonic-web: `), in an `INTERNAL` status, as tonic-web reports every body error.
#[derive(Debug, thiserror::Error)]
pub(super) enum TextError {
    #[error("the grpc-web-text request body is not valid base64: {0}")]
    Invalid(String),
    #[error("a grpc-web-text request cannot carry HTTP trailers")]
    Trailers,
    /// Reading the body failed (the client went away, a timeout): its reason, as it was.
    #[error("{}", .0.message())]
    Read(tonic::Status),
}

/// A streaming base64 decoder for concatenated, optionally padded, segments.
#[derive(Debug, Default)]
pub(super) struct TextDecoder {
    /// Characters of a group the last chunk cut off (at most 3).
    carry: [u8; 4],
    carry_len: usize,
    /// Characters decoded so far: where the next one is in the body, for error messages.
    offset: usize,
}

impl TextDecoder {
    /// Decodes what `data` completes, appending the bytes to `out`.
    pub(super) fn push(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> Result<(), TextError> {
        if self.carry_len > 0 {
            let n = (4 - self.carry_len).min(data.len());
            self.carry[self.carry_len..self.carry_len + n].copy_from_slice(&data[..n]);
            self.carry_len += n;
            data = &data[n..];
            if self.carry_len < 4 {
                return Ok(());
            }
            self.carry_len = 0;
            let group = self.carry;
            self.groups(&group, out)?;
        }
        let whole = data.len() / 4 * 4;
        self.groups(&data[..whole], out)?;
        let rest = &data[whole..];
        self.carry[..rest.len()].copy_from_slice(rest);
        self.carry_len = rest.len();
        Ok(())
    }

    /// The end of the body: the characters left over are its last, unpadded, group.
    pub(super) fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), TextError> {
        let len = std::mem::take(&mut self.carry_len);
        match len {
            0 => Ok(()),
            1 => Err(TextError::Invalid(format!(
                "it ends with a single character (at offset {}), which encodes no byte",
                self.offset
            ))),
            _ => {
                let group = self.carry;
                // Unpadded or padded whole: `AA=` is neither (the base64 crate would take it).
                if let Some(at) = group[..len].iter().position(|&b| b == b'=') {
                    return Err(TextError::Invalid(format!("the padding at offset {} is cut short", self.offset + at)));
                }
                self.segment(&group[..len], out)
            }
        }
    }

    /// Characters left over from the chunks so far.
    pub(super) fn pending(&self) -> usize {
        self.carry_len
    }

    /// Decodes whole groups: a group with padding ends its segment, and the next one starts
    /// right after it.
    fn groups(&mut self, mut groups: &[u8], out: &mut Vec<u8>) -> Result<(), TextError> {
        while !groups.is_empty() {
            let end = groups.iter().position(|&b| b == b'=').map_or(groups.len(), |at| (at / 4 + 1) * 4);
            let (segment, rest) = groups.split_at(end.min(groups.len()));
            self.segment(segment, out)?;
            groups = rest;
        }
        Ok(())
    }

    fn segment(&mut self, segment: &[u8], out: &mut Vec<u8>) -> Result<(), TextError> {
        let start = out.len();
        out.resize(start + segment.len().div_ceil(4) * 3, 0);
        match ENGINE.decode_slice(segment, &mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                self.offset += segment.len();
                Ok(())
            }
            Err(e) => {
                out.truncate(start);
                // The group at fault when the crate names none: the segment's last.
                let last = self.offset + segment.len().saturating_sub(1) / 4 * 4;
                Err(self.error(e, last))
            }
        }
    }

    fn error(&self, e: DecodeSliceError, last: usize) -> TextError {
        // A printable ASCII byte as itself, any other as its value: the client sent a byte,
        // not a Latin-1 character.
        let shown =
            |b: u8| if b.is_ascii_graphic() { format!("'{}'", char::from(b)) } else { format!("byte 0x{b:02x}") };
        use base64::DecodeError::*;
        let at = |i: usize| self.offset + i;
        TextError::Invalid(match e {
            DecodeSliceError::DecodeError(InvalidByte(i, b'=')) => {
                format!("the padding at offset {} is misplaced", at(i))
            }
            DecodeSliceError::DecodeError(InvalidByte(i, b)) => {
                format!("{} at offset {} is not a base64 character", shown(b), at(i))
            }
            DecodeSliceError::DecodeError(InvalidLength(_)) => {
                format!("the group at offset {last} has a single character, which encodes no byte")
            }
            DecodeSliceError::DecodeError(InvalidLastSymbol(i, b)) => format!(
                "{} at offset {} ends its group with bits that encode no byte (not canonical base64)",
                shown(b),
                at(i)
            ),
            DecodeSliceError::DecodeError(InvalidPadding) => {
                format!("the padding of the group at offset {last} is wrong")
            }
            // The output is sized for every group: a full one decodes to three bytes.
            DecodeSliceError::OutputSliceTooSmall => "it decodes to more than it can hold".to_string(),
        })
    }
}

/// A grpc-web-text request body, decoded to binary as it streams.
pub(super) struct TextRequest {
    inner: Body,
    decoder: TextDecoder,
    /// Nothing more comes: the body ended, failed or was refused.
    done: bool,
}

impl TextRequest {
    pub(super) fn new(inner: Body) -> Self {
        Self { inner, decoder: TextDecoder::default(), done: false }
    }

    fn refuse(&mut self, e: TextError) -> Poll<Option<Result<Frame<Bytes>, TextError>>> {
        self.done = true;
        Poll::Ready(Some(Err(e)))
    }
}

impl http_body::Body for TextRequest {
    type Data = Bytes;
    type Error = TextError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, TextError>>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            let mut out = Vec::new();
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        if let Err(e) = this.decoder.push(&data, &mut out) {
                            return this.refuse(e);
                        }
                    }
                    // As tonic-web has it: a text body has nowhere to put HTTP trailers.
                    Err(_) => return this.refuse(TextError::Trailers),
                },
                Some(Err(status)) => return this.refuse(TextError::Read(status)),
                None => {
                    this.done = true;
                    if let Err(e) = this.decoder.finish(&mut out) {
                        return this.refuse(e);
                    }
                }
            }
            if !out.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        // Not while characters are left over: they are the body's last group, or its error.
        self.done || (self.decoder.pending() == 0 && self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        if self.is_end_stream() {
            return SizeHint::with_exact(0);
        }
        // n base64 characters decode to at most 3n/4 bytes; padding makes it fewer.
        let mut hint = SizeHint::new();
        if let Some(upper) = self.inner.size_hint().upper() {
            hint.set_upper(upper.saturating_add(self.decoder.pending() as u64).saturating_mul(3) / 4);
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};

    use super::*;
    use crate::testing::{Frames, body_contract};

    /// `text` decoded in the chunks `cuts` makes of it.
    fn decode(text: &[u8], cuts: &[usize]) -> Result<Vec<u8>, String> {
        let mut decoder = TextDecoder::default();
        let mut out = Vec::new();
        let mut from = 0;
        for &to in cuts.iter().chain([&text.len()]) {
            decoder.push(&text[from..to], &mut out).map_err(|e| e.to_string())?;
            from = to;
        }
        decoder.finish(&mut out).map_err(|e| e.to_string())?;
        Ok(out)
    }

    /// Every way to cut `text` in two and in three, and one byte at a time.
    fn every_cut(text: &[u8]) -> Vec<Vec<usize>> {
        let mut cuts = vec![vec![], (1..text.len()).collect()];
        for a in 0..=text.len() {
            cuts.push(vec![a]);
            for b in a..=text.len() {
                cuts.push(vec![a, b]);
            }
        }
        cuts
    }

    fn frames(lens: &[usize]) -> Vec<Vec<u8>> {
        lens.iter().map(|&n| (0..n).map(|i| (i * 37 + n) as u8).collect()).collect()
    }

    #[test]
    fn padded_unpadded_and_concatenated_segments_decode_at_any_cut() {
        for lens in [&[0][..], &[1], &[2], &[3], &[5, 1], &[4, 2, 7], &[1, 1, 1]] {
            let parts = frames(lens);
            let whole: Vec<u8> = parts.concat();
            let texts = [
                STANDARD.encode(&whole),
                STANDARD_NO_PAD.encode(&whole),
                // Each frame encoded on its own, as a client that sends them one by one does.
                parts.iter().map(|p| STANDARD.encode(p)).collect::<String>(),
                // The same, the last one unpadded.
                parts
                    .iter()
                    .enumerate()
                    .map(|(i, p)| if i + 1 == parts.len() { STANDARD_NO_PAD.encode(p) } else { STANDARD.encode(p) })
                    .collect(),
            ];
            for text in texts {
                for cuts in every_cut(text.as_bytes()) {
                    assert_eq!(decode(text.as_bytes(), &cuts).as_ref(), Ok(&whole), "{text:?} cut at {cuts:?}");
                }
            }
        }
    }

    #[test]
    fn what_is_not_base64_is_refused_at_any_cut() {
        let cases: &[(&str, &str)] = &[
            ("!!!!", "'!' at offset 0 is not a base64 character"),
            ("AAAA\r\nAAAA", "byte 0x0d at offset 4 is not a base64 character"),
            ("AAAA\u{e9}", "byte 0xc3 at offset 4 is not a base64 character"),
            ("AAAAA", "a single character (at offset 4)"),
            ("AA=A", "padding at offset 2 is misplaced"),
            ("AAAA=AAA", "padding at offset 4 is misplaced"),
            ("AA==AA=A", "padding at offset 6 is misplaced"),
            ("A===", "padding at offset 1 is misplaced"),
            ("AAB", "not canonical base64"),
            ("AB==", "not canonical base64"),
            ("AA=", "padding at offset 2 is cut short"),
            ("AAAAAA=", "padding at offset 6 is cut short"),
        ];
        for (text, why) in cases {
            for cuts in every_cut(text.as_bytes()) {
                let err = decode(text.as_bytes(), &cuts).expect_err(text);
                assert!(err.contains(why), "{text:?} cut at {cuts:?}: {err}");
                assert!(err.starts_with("the grpc-web-text request body is not valid base64: "), "{err}");
            }
        }
    }

    #[tokio::test]
    async fn the_body_decodes_and_keeps_the_body_contract() {
        let text = format!("{}{}", STANDARD.encode([0, 0, 0, 0, 1, 9]), STANDARD_NO_PAD.encode([0, 0, 0, 0, 0]));
        let chunks: Vec<Frame<Bytes>> =
            text.as_bytes().chunks(3).map(|c| Frame::data(Bytes::copy_from_slice(c))).collect();
        let body = TextRequest::new(Body::new(Frames::new(chunks)));
        let out = body_contract(body).await;
        assert_eq!(out.data, [0, 0, 0, 0, 1, 9, 0, 0, 0, 0, 0]);
    }
}
