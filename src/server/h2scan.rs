//! Follows HTTP/2 frame boundaries in the bytes a client sends, reading only the 9-byte frame
//! headers, to know when a header block (HEADERS or PUSH_PROMISE, then CONTINUATION frames
//! until END_HEADERS) is open. h2 buffers a partial header block without any timeout, and
//! while one is open no other frame may arrive on the connection (RFC 9113 §6.10), so a block
//! that never ends stalls the whole connection: [`super::io::Watched`] bounds it with
//! `header_read_timeout`. h2 itself parses and validates every frame; this only counts bytes.

use super::admission::now_ms;

const HEADERS: u8 = 0x1;
const PUSH_PROMISE: u8 = 0x5;
const CONTINUATION: u8 = 0x9;
const END_HEADERS: u8 = 0x4;

/// The frame scanner's state between reads.
#[derive(Debug, Default)]
pub(crate) struct FrameScan {
    head: [u8; 9],
    have: usize,
    /// Payload bytes of the current frame not yet seen.
    skip: usize,
    /// When the open header block began ([`now_ms`]), if one is open.
    block_since: Option<u64>,
}

impl FrameScan {
    /// Takes the next bytes the client sent.
    pub(crate) fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(data.len());
                self.skip -= n;
                data = &data[n..];
                continue;
            }
            let n = (9 - self.have).min(data.len());
            self.head[self.have..self.have + n].copy_from_slice(&data[..n]);
            self.have += n;
            data = &data[n..];
            if self.have == 9 {
                self.have = 0;
                self.frame(self.head);
            }
        }
    }

    fn frame(&mut self, head: [u8; 9]) {
        self.skip = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let (kind, flags) = (head[3], head[4]);
        if matches!(kind, HEADERS | PUSH_PROMISE | CONTINUATION) {
            if flags & END_HEADERS != 0 {
                self.block_since = None;
            } else if self.block_since.is_none() {
                self.block_since = Some(now_ms());
            }
        }
    }

    pub(crate) fn in_header_block(&self) -> bool {
        self.block_since.is_some()
    }

    /// When the open header block began, if one is open.
    pub(crate) fn header_block_since(&self) -> Option<u64> {
        self.block_since
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, len: usize) -> Vec<u8> {
        let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags, 0, 0, 0, 1];
        out.resize(9 + len, 0xAB);
        out
    }

    #[test]
    fn follows_header_blocks_across_any_split() {
        let mut bytes = frame(0x4, 0, 12); // SETTINGS
        bytes.extend(frame(HEADERS, 0, 30)); // block opens
        let open_at = bytes.len();
        bytes.extend(frame(CONTINUATION, 0, 5));
        // The block ends with the header of this frame (its 9th byte).
        let closed_at = bytes.len() + 9;
        bytes.extend(frame(CONTINUATION, END_HEADERS, 7));
        bytes.extend(frame(0x0, 1, 100)); // DATA
        for split in 1..bytes.len() {
            let mut scan = FrameScan::default();
            for chunk in bytes.chunks(split) {
                scan.feed(chunk);
            }
            assert!(!scan.in_header_block(), "split {split}");
        }
        let mut scan = FrameScan::default();
        scan.feed(&bytes[..open_at]);
        assert!(scan.in_header_block());
        scan.feed(&bytes[open_at..closed_at - 1]);
        assert!(scan.in_header_block());
        scan.feed(&bytes[closed_at - 1..]);
        assert!(!scan.in_header_block());
    }

    #[test]
    fn a_complete_headers_frame_opens_nothing() {
        let mut scan = FrameScan::default();
        scan.feed(&frame(HEADERS, END_HEADERS | 1, 40));
        assert!(!scan.in_header_block());
        // A DATA payload that looks like a HEADERS frame header is skipped, not parsed.
        let mut data = frame(0x0, 0, 9);
        data[9..].copy_from_slice(&[0, 0, 1, HEADERS, 0, 0, 0, 0, 3]);
        scan.feed(&data);
        assert!(!scan.in_header_block());
    }
}
